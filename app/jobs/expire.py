"""The expiry sweep: revoke every session whose window has ended, retry failing revokes, and
finish intents (`granting` / `revoking`) whose worker died, and ask again about grants whose
outcome is unknown (`grant_unknown`: revoked if found). Idempotent, and safe to run in every
replica at once, against one PostgreSQL:

- Claim, then call. One transaction locks a batch of due sessions with SELECT … FOR UPDATE SKIP
  LOCKED (rows another replica is claiming right now are skipped, not waited for), moves each to
  its claimed state and commits: an expiring session is ended exactly as "End access now" ends
  it (`start_ending`: `revoking`, audited `expired`), a due retry or an abandoned intent gets a
  fresh lease. Then the provider calls run on a thread pool (SWEEP_WORKERS), each recording its
  outcome in one transaction, through the same operations the buttons use.
- A claim is a lease (INTENT_LEASE): a session another worker has claimed is not due until the
  lease runs out, which is how the work of a replica that died mid-call is finished by another.
- Each query reads an index ((state, expires_at), (state, next_attempt_at)), so a sweep costs
  what is due, not how many sessions exist.
- A sweep claims no more than its workers can start at once and claims again once a quarter of
  them are free, so a burst is shared between replicas and no claim waits in a queue for its
  lease to run out; outcomes are recorded a batch at a time (claiming or recording every freed
  slot on its own would cost a transaction per session).
- The scheduler runs the sweep when the next session falls due, not only every tick (see
  scheduler.py), so a burst starts on time.

On SQLite the database's write lock serializes the claims; one process is the supported set-up.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from app import audit, clock
from app.context import AppContext
from app.db import is_postgres, reading, transaction
from app.jobs.safely import safely
from app.models import AccessRequest, AccessSession, EndReason, RequestState, SessionState
from app.operations.common import INTENT_LEASE
from app.operations.end_session import (
    RevokeOutcome,
    call_revoke,
    claim_revoke,
    record_revokes,
    start_ending,
)
from app.operations.grant_session import confirm_grant, grant_session
from app.operations.request_access import submit_request

log = structlog.get_logger(__name__)

#: What is due, by the kind of claim: (states, the time column that says when).
DUE: dict[str, tuple[tuple[SessionState, ...], InstrumentedAttribute[Any]]] = {
    "expired": ((SessionState.active,), AccessSession.expires_at),
    "retried": (
        (SessionState.revoke_failing, SessionState.revoking),
        AccessSession.next_attempt_at,
    ),
    "resumed": ((SessionState.granting,), AccessSession.next_attempt_at),
    "unconfirmed": ((SessionState.grant_unknown,), AccessSession.next_attempt_at),
}


@dataclass
class SweepResult:
    """Ids of the sessions a sweep claimed: expired (now being revoked), retried (a failing
    revoke, or a revoke whose worker died), resumed (a grant whose worker died), unconfirmed
    (a grant whose outcome is unknown, asked about again)."""

    expired: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)


@dataclass
class Claims:
    """What one claiming transaction took: the sessions, committed in their claimed state."""

    expired: list[AccessSession] = field(default_factory=list)
    retried: list[AccessSession] = field(default_factory=list)
    resumed: list[AccessSession] = field(default_factory=list)
    unconfirmed: list[AccessSession] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.expired) + len(self.retried) + len(self.resumed) + len(self.unconfirmed)


def due_sessions(kind: str, now: datetime, limit: int) -> Select[AccessSession]:
    """The sessions of one kind (see DUE) that are due at `now`, oldest first, locked for the
    claiming transaction; rows locked by someone else are skipped."""
    states, column = DUE[kind]
    return (
        select(AccessSession)
        .where(AccessSession.state.in_(states), column <= now)
        .order_by(column)
        .limit(limit)
        .with_for_update(skip_locked=True, of=AccessSession)
    )


def next_due(kind: str) -> Select[datetime | None]:
    """When the next session of one kind (see DUE) falls due: the first entry of its index."""
    states, column = DUE[kind]
    return select(func.min(column)).where(AccessSession.state.in_(states))


def next_due_at(ctx: AppContext) -> datetime | None:
    """When the next session falls due, or None when none will (without SQLite's write lock)."""
    with reading(ctx.db) as db:
        times = [db.scalar(next_due(kind)) for kind in DUE]
    return min((t for t in times if t is not None), default=None)


def claim_due_sessions(ctx: AppContext, limit: int) -> Claims:
    """Claim up to `limit` due sessions in one transaction (see the module docstring)."""
    claims = Claims()
    with transaction(ctx.db) as db:
        now = clock.now()
        for session in db.scalars(due_sessions("expired", now, limit)):
            start_ending(db, session, EndReason.expired, audit.SYSTEM_ACTOR)
            claims.expired.append(session)
        if len(claims) < limit:
            for session in db.scalars(due_sessions("retried", now, limit - len(claims))):
                claim_revoke(session)
                claims.retried.append(session)
        if len(claims) < limit:
            for session in db.scalars(due_sessions("resumed", now, limit - len(claims))):
                session.next_attempt_at = now + INTENT_LEASE
                claims.resumed.append(session)
        if len(claims) < limit:
            for session in db.scalars(due_sessions("unconfirmed", now, limit - len(claims))):
                session.next_attempt_at = now + INTENT_LEASE
                claims.unconfirmed.append(session)
    return claims


def expire_due_sessions(ctx: AppContext) -> SweepResult:
    """One sweep: claim what is due, a batch at a time, until nothing is left. Provider calls
    for different sessions run side by side, so a thousand sessions expiring in the same second
    are not revoked one after another; calls for the same access still queue (holder_lock)."""
    result = SweepResult()
    workers = ctx.settings.sweep_workers
    batch = max(1, workers // 4)  # claim and record at least this many at a time
    claims = claim_due_sessions(ctx, workers)
    if not claims:
        return result
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
        running: set[Future[Any]] = set()  # revokes give outcomes; grants and checks none
        outcomes: list[RevokeOutcome] = []

        def collect(block: bool) -> None:
            """Take the outcomes of the calls that came back (waiting for one if `block`)."""
            nonlocal running
            done, running = wait(running, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            outcomes.extend(o for f in done if isinstance(o := f.result(), RevokeOutcome))

        def record() -> None:
            """Record the outcomes taken so far, together: one transaction for the batch."""
            if outcomes:
                batch_of = outcomes[:]
                outcomes.clear()
                safely(
                    "sweep",
                    partial(record_revokes, ctx, batch_of),
                    session_id=batch_of[0].session_id,
                )

        while claims:
            result.expired += [s.id for s in claims.expired]
            result.retried += [s.id for s in claims.retried]
            result.resumed += [s.id for s in claims.resumed]
            result.unconfirmed += [s.id for s in claims.unconfirmed]
            running |= {
                pool.submit(safely, "sweep", partial(call_revoke, ctx, s), session_id=s.id)
                for s in claims.expired + claims.retried
            }
            running |= {
                pool.submit(safely, "sweep", partial(grant_session, ctx, s.id), session_id=s.id)
                for s in claims.resumed
            }
            running |= {
                pool.submit(safely, "sweep", partial(confirm_grant, ctx, s.id), session_id=s.id)
                for s in claims.unconfirmed
            }
            collect(block=False)
            # The next batch is claimed when a batch's worth of workers is free to start it.
            while len(running) > workers - batch:
                collect(block=True)
            record()
            # What fell due meanwhile is claimed now; once nothing is, the sweep only finishes
            # what it started (the next sweep, if the timers still run, takes what comes).
            claims = claim_due_sessions(ctx, workers - len(running))
        while running:
            collect(block=True)
            if len(outcomes) >= batch or not running:
                record()
    return result


def resume_interrupted(ctx: AppContext) -> SweepResult:
    """At start. On SQLite (one process) the intents left in `granting` / `revoking` were this
    process's, and nobody alive holds them: they are made due now. On PostgreSQL another replica
    may be in the middle of them, so their leases are kept, and whatever a dead process left is
    finished by the sweep when its lease runs out (INTENT_LEASE)."""
    with transaction(ctx.db) as db:
        if not is_postgres(db.get_bind()):
            rows = db.scalars(
                select(AccessSession).where(
                    AccessSession.state.in_((SessionState.granting, SessionState.revoking))
                )
            ).all()
            for row in rows:
                row.next_attempt_at = clock.now()
    return expire_due_sessions(ctx)


def announce_unposted_requests(ctx: AppContext) -> list[str]:
    """At start: pending requests whose card was never posted (the process stopped between
    storing the request and submitting it) are submitted now: what the policy decides alone
    (break-glass, staging, on call) is decided and granted, the card is posted."""
    with transaction(ctx.db) as db:
        ids = list(
            db.scalars(
                select(AccessRequest.id).where(
                    AccessRequest.state == RequestState.pending, AccessRequest.card_ts.is_(None)
                )
            )
        )
    for request_id in ids:
        safely("submit_at_start", partial(submit_request, ctx, request_id), request_id=request_id)
    return ids
