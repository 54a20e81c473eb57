"""The provider calls of one expiry sweep (app/jobs/expire.py), on a pool of SWEEP_WORKERS
threads, arranged so that a burst of sessions ending together reaches the provider together:

- Revokes first. A verified revoke is two calls (revoke, then check), and the revoke is what
  ends the access: every revoke waiting to be sent goes before any check or grant (a priority
  queue), so a thousand revokes go out in ⌈1000 / workers⌉ provider round trips, not twice that;
  and the checks are sent once every revoke of the burst has been answered, so that at the
  provider they do not compete with the last revokes.
- No database on the way. The holder locks of a claimed batch are taken at once
  (`holder_locks`: on PostgreSQL one statement on one connection, not a connection per call in
  flight), "does anyone else hold this access" is asked once for the batch under them
  (`other_holders`), and a worker then only calls the provider. A session whose access is busy
  (or appears twice in the batch) takes the ordinary path, `call_revoke`, which waits its turn.
- Outcomes are recorded by the sweep's thread, a batch at a time, when no revoke is waiting to
  go out (recording is the CPU-heaviest step and would hold the revokes back).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from functools import partial

import structlog
from sqlalchemy.exc import SQLAlchemyError

from app import clock, metrics
from app.context import AppContext
from app.jobs.safely import safely
from app.models import AccessSession, EndReason
from app.operations.common import HeldAccess, access_of, holder_locks, provider_for
from app.operations.end_session import (
    LONGEST_LEAD_SECONDS,
    RevokeOutcome,
    call_revoke,
    not_before_its_end,
    other_holders,
    record_revokes,
    verify_gone,
)
from app.operations.errors import OperationError
from app.providers.base import Provider, ProviderError
from app.text import short

#: What a burst takes per revoke to send, about (bench/expiry_lag.py on 2 cores: 1,000 revokes
#: went out in 0.55 s with the machine quiet, in 1 to 1.5 s with it busy, and on PostgreSQL or
#: beside a second replica the CPU per revoke is higher): a burst of n starts n times this
#: before its end, at most EXPIRY_REVOKE_AHEAD_SECONDS, so its last revoke goes out about on time.
SEND_SECONDS = 0.001
log = structlog.get_logger(__name__)
REVOKE, LATER = 0, 1  # priorities: revokes, then the rest (checks, grants, the ordinary path)


class _Queued:
    """A step's answer when it queued the next step (the session is not finished)."""


QUEUED = _Queued()


class Pool:
    """Up to `size` threads taking work by priority, then in order. Threads are started as work
    arrives and kept for the next sweep (starting hundreds at the moment a burst is due cost
    more than the burst's first calls); one idle for IDLE_SECONDS ends."""

    IDLE_SECONDS = 60.0

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], object]]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._threads = 0
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, priority: int, work: Callable[[], object]) -> None:
        self._queue.put((priority, next(self._order), work))
        with self._lock:
            if self._queue.qsize() <= self._idle or self._threads >= self.size:
                return  # an idle thread is there for each item queued, or no more may start
            self._threads += 1
            self._idle += 1  # counted idle from now: the next submit need not start another
            name = f"sweep_{self._threads}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                _, _, work = self._queue.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._threads -= 1
                        self._idle -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
            try:
                work()
            finally:
                with self._lock:
                    self._idle += 1


_pools: dict[tuple[str, int], Pool] = {}
_pools_lock = threading.Lock()
#: Threads for the ordinary path (a revoke waiting its turn for an access, which may be held by
#: this very burst until one of its checks has run; a grant; a check of an unknown grant): a
#: pool apart, so that a wait there never holds up the burst's own calls. On PostgreSQL each of
#: these calls holds a connection for its advisory lock, so they are few.
ORDINARY_WORKERS = 16


def pool_of(kind: str, size: int) -> Pool:
    """The process's pool of `kind` (burst, ordinary) with `size` workers, shared by sweeps."""
    with _pools_lock:
        pool = _pools.get((kind, size))
        if pool is None:
            pool = _pools[(kind, size)] = Pool(size)
        return pool


class Burst:
    """The calls for the sessions of one sweep; `start` them as they are claimed, `settle` to
    record outcomes while they come back. Use as a context manager: leaving waits for every
    call and records what is left, then lets the holder locks go."""

    def __init__(self, ctx: AppContext, workers: int) -> None:
        self.ctx = ctx
        self.batch = max(1, workers // 4)  # outcomes recorded together
        self._ahead = ctx.settings.expiry_revoke_ahead_seconds
        self._pool = pool_of("burst", workers)
        self._ordinary = pool_of("ordinary", ORDINARY_WORKERS)
        self._locks = ExitStack()
        lock = threading.Lock()
        self._changed = threading.Condition(lock)  # a session finished
        self._queued = threading.Condition(lock)  # more revokes were queued
        self._outcomes: list[RevokeOutcome] = []
        self._pending = 0  # sessions started and not finished
        self._revokes_waiting = 0  # revokes not sent yet
        self._revokes_sent = 0  # revokes sent and not answered yet
        self._checks: list[Callable[[], object]] = []  # to queue once no revoke is left

    def __enter__(self) -> Burst:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.settle(0)
        finally:
            self._locks.close()

    @property
    def pending(self) -> int:
        with self._changed:
            return self._pending

    def start(
        self,
        revokes: list[AccessSession],
        others: list[tuple[str, Callable[[], object]]],
    ) -> None:
        """Start the revokes of claimed sessions, and other work (session id, call)."""
        with self._changed:
            self._pending += len(revokes) + len(others)
        if revokes:
            held, held_by = self._hold(revokes)
            for session in held.taken:
                if held_by[session.id]:  # someone else still holds it: no provider call
                    held.release(session)
                    self._finish(RevokeOutcome(session.id, held_by=tuple(held_by[session.id])))
                    continue
                with self._changed:
                    self._revokes_waiting += 1
                self._pool.submit(REVOKE, partial(self._guarded, session, self._revoke, held))
            with self._queued:
                self._queued.notify_all()  # those waiting for their turn look again
            for session in held.left:  # waits its turn for the access: the ordinary path
                self._ordinary.submit(LATER, partial(self._guarded, session, self._slow_path, held))
        for session_id, work in others:
            self._ordinary.submit(LATER, partial(self._other, session_id, work))

    def _hold(self, revokes: list[AccessSession]) -> tuple[HeldAccess, dict[str, list[str]]]:
        """The batch's holder locks, and who else holds each access. When the database refuses
        (no connection for the locks, say), every revoke takes the ordinary path, which
        records such a failure as a failed attempt, retried with backoff."""
        held = HeldAccess()
        try:
            held = self._locks.enter_context(holder_locks(revokes))
            if held.taken:
                return held, other_holders(self.ctx, held.taken, held.connection)
        except SQLAlchemyError:
            log.warning("sweep_batch_locks_failed", sessions=len(revokes), exc_info=True)
            for session in held.taken:
                held.release(session)
            held.taken, held.left = [], list(revokes)
        return held, {}

    def settle(self, room: int) -> None:
        """Record outcomes as they come back, until no more than `room` sessions are pending."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending <= room or self._ready())
                done = self._pending <= room
                outcomes, self._outcomes = self._outcomes, []
            if outcomes:
                safely(
                    "sweep",
                    partial(record_revokes, self.ctx, outcomes),
                    session_id=outcomes[0].session_id,
                )
            if done:
                return

    def _ready(self) -> bool:
        """A batch of outcomes is worth recording, and no revoke is waiting to go out."""
        return len(self._outcomes) >= self.batch and self._revokes_waiting == 0

    # --- on the workers ---------------------------------------------------------------------

    def _guarded(
        self,
        session: AccessSession,
        step: Callable[[AccessSession, HeldAccess], RevokeOutcome | _Queued],
        held: HeldAccess,
    ) -> None:
        """Run a step of a session's revoke. A step returns the outcome, or None when a next
        step was queued; whatever goes wrong, the session is finished (its lease left to run
        out, as after a crash) and its access let go."""
        failed = object()
        outcome = safely("sweep", partial(step, session, held), session_id=session.id) or failed
        if outcome is failed or isinstance(outcome, RevokeOutcome):
            held.release(session)
            self._finish(outcome if isinstance(outcome, RevokeOutcome) else None)

    def _revoke(self, session: AccessSession, held: HeldAccess) -> RevokeOutcome | _Queued:
        """The revoke call, in its turn (`_wait_turn`); then its check, once every revoke of
        the burst has been sent and answered (`_checks_after`)."""
        try:
            self._wait_turn(session)
        except BaseException:
            self._checks_after(None, sent=False)
            raise
        with self._changed:
            self._revokes_waiting -= 1
            self._revokes_sent += 1
        started = time.perf_counter()
        check: Callable[[], object] | None = None
        try:
            provider = provider_for(self.ctx, session.system_id)
            note = provider.revoke(access_of(session))
        except (ProviderError, OperationError) as exc:
            metrics.REVOKE_SECONDS.observe(time.perf_counter() - started)
            return RevokeOutcome(session.id, error=short(exc))
        else:
            verify = partial(self._verify, provider, note, started, clock.now())
            check = partial(self._guarded, session, verify, held)
            return QUEUED
        finally:
            self._checks_after(check)

    def _checks_after(self, check: Callable[[], object] | None, *, sent: bool = True) -> None:
        """A revoke was answered (`check`: its verification, if it succeeded), or was never
        sent (`sent` False). The checks wait until no revoke is waiting to go out or in flight:
        at the provider they would compete with the burst's last revokes, which are what ends
        the access."""
        with self._changed:
            if sent:
                self._revokes_sent -= 1
            else:
                self._revokes_waiting -= 1
            if check is not None:
                self._checks.append(check)
            if self._revokes_waiting or self._revokes_sent:
                return
            checks, self._checks = self._checks, []
        for queued in checks:
            self._pool.submit(LATER, queued)

    def _wait_turn(self, session: AccessSession) -> None:
        """Until the session's end, less what the revokes queued with it take to send (at most
        EXPIRY_REVOKE_AHEAD_SECONDS), looked at again as more are queued; then, in case the
        clock was moved, `not_before_its_end` with what is allowed."""
        ends = session.expires_at
        early = 0.0
        if session.end_reason == EndReason.expired and ends is not None:
            with self._queued:
                while True:
                    early = min(self._ahead, SEND_SECONDS * (self._revokes_waiting - 1))
                    wait = (ends - clock.now()).total_seconds() - early
                    if wait <= 0 or wait > LONGEST_LEAD_SECONDS:
                        break
                    self._queued.wait(wait)
        not_before_its_end(session, early)

    def _verify(
        self,
        provider: Provider,
        note: str | None,
        started: float,
        revoked_at: datetime,
        session: AccessSession,
        _held: HeldAccess,
    ) -> RevokeOutcome:
        try:
            verify_gone(provider, access_of(session))
        except ProviderError as exc:
            return RevokeOutcome(session.id, error=short(exc))
        finally:
            metrics.REVOKE_SECONDS.observe(time.perf_counter() - started)
        return RevokeOutcome(session.id, note=note, revoked_at=revoked_at)

    def _slow_path(self, session: AccessSession, _held: HeldAccess) -> RevokeOutcome:
        return call_revoke(self.ctx, session)

    def _other(self, session_id: str, work: Callable[[], object]) -> None:
        try:
            safely("sweep", work, session_id=session_id)
        finally:
            self._finish(None)

    def _finish(self, outcome: RevokeOutcome | None) -> None:
        with self._changed:
            self._pending -= 1
            if outcome is not None:
                self._outcomes.append(outcome)
            self._changed.notify_all()
