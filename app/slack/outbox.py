"""Slack notices that never hold up a revoke and are not lost while Slack is down.

Every SlackNotifier method goes through `NoticeOutbox.send` (the `_never_raises` decorator in
notices.py). The rules:

- Revoke first, notify after: operations call the notifier after their commit. In the serving
  process (`start()`), a notice is put on a lane and the caller goes on at once, so an expiry
  sweep never waits for Slack, however slow it is; a request's notices share one lane, so they
  go out in the order they were sent. Elsewhere (the CLI, tests driving operations) a notice is
  sent in the caller's thread.
- The Web API client retries rate limits and 5xx itself (bolt_app.make_client). A notice that
  still fails is stored in `pending_notices`: the notifier method's name, the request and session
  it is about, and its other arguments as JSON. Rows are stored as ids and read again when the
  notice is re-sent, so it says what is true by then. `resend_pending_notices` (a scheduler job)
  calls the same method again with backoff, and after NOTICE_MAX_ATTEMPTS gives up: an error is
  logged and the row stays, marked failed.
- While a request has a notice waiting in the table, its later notices wait behind it, so nobody
  reads "access ended" before "access granted". The waiting notice itself, sent again by its
  caller (a card posted at start), goes at once and takes the kept copy along.
- At stop, queued notices are still sent for a few seconds, then stored: none is dropped.

A notice is delivered at least once: one that failed halfway (the card posted, the DM refused)
is sent again whole.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import clock, metrics
from app.config import Settings
from app.context import AppContext
from app.db import reading, transaction
from app.logging import bound, ids_of
from app.models import AccessRequest, AccessSession, PendingNotice
from app.operations.common import backoff
from app.text import short

log = structlog.get_logger(__name__)
#: At stop, queued notices are still sent for this long; the rest are stored for the next start.
STOP_DRAIN_SECONDS = 5.0
#: A row being re-sent is leased for this long, so other replicas leave it alone.
RESEND_LEASE = timedelta(minutes=2)
BATCH = 200


@dataclass
class Resent:
    """What one pass of `resend` did, by row id."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)


def describe(exc: Exception) -> str:
    """Slack's error code (and the HTTP status when it was not 200), else the exception."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        error = str(exc.response.get("error") or "unknown_error")
        return error if status == 200 else f"{error} (HTTP {status})"
    return short(repr(exc))


def encode_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """A notice's arguments as JSON: rows as their ids, plain values (text, numbers, lists of
    user ids …) as they are. None when an argument is neither, so the notice can't be kept."""
    try:
        return json.dumps(
            {
                "args": [_encode(a) for a in args],
                "kwargs": {k: _encode(v) for k, v in kwargs.items()},
            },
            sort_keys=True,
        )
    except TypeError:
        return None


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, AccessSession):
        return {"session": value.id}
    if isinstance(value, AccessRequest):
        return {"request": value.id}
    json.dumps(value)  # TypeError for anything JSON can't hold
    return {"value": value}


def decode_args(db: Session, encoded: str) -> tuple[list[Any], dict[str, Any]]:
    """The arguments back, rows read again; LookupError when a row no longer exists."""
    data = json.loads(encoded)
    return [_decode(db, a) for a in data["args"]], {
        k: _decode(db, v) for k, v in data["kwargs"].items()
    }


def _decode(db: Session, item: dict[str, Any]) -> Any:
    for key, model in (("session", AccessSession), ("request", AccessRequest)):
        if key in item:
            row = db.get(model, item[key])
            if row is None:
                raise LookupError(f"{key} {item[key]} no longer exists")
            return row
    return item["value"]


def _undecorated(notifier: object, notice: str) -> Callable[..., None]:
    """The notifier method itself, without `_never_raises` (which would queue it again)."""
    method = getattr(type(notifier), notice, None)
    if method is None:
        raise LookupError(f"the notifier has no notice called {notice}")
    return functools.partial(inspect.unwrap(method), notifier)


class NoticeOutbox:
    """Sends a notifier's notices (in the caller's thread, or on lanes after `start`), keeps
    the ones Slack refuses in `pending_notices`, and sends those again (`resend`)."""

    def __init__(self, db: sessionmaker[Session], settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._lanes: list[ThreadPoolExecutor] | None = None
        self._stop_by: float | None = None  # time.monotonic() after which queued ones are stored
        self._waiting: set[str] | None = None  # requests with a notice in the table (None: unread)

    # --- sending ---
    def start(self, lanes: int) -> None:
        """From now on notices are sent on `lanes` threads and callers never wait for Slack."""
        with self._lock:
            if self._lanes is None:
                self._stop_by = None
                self._lanes = [
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"notice-{n}")
                    for n in range(lanes)
                ]

    def stop(self) -> None:
        """Send what is queued for up to STOP_DRAIN_SECONDS, then keep the rest, and any notice
        sent after that, for the next start; the lanes are gone."""
        with self._lock:
            lanes, self._lanes = self._lanes, None
            self._stop_by = time.monotonic() + STOP_DRAIN_SECONDS
        for lane in lanes or ():
            lane.shutdown(wait=True)

    def send(
        self, notifier: object, notice: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Deliver `notifier.<notice>(*args, **kwargs)` (see the module docstring); never
        raises."""
        ids = ids_of(*args, *kwargs.values())
        with self._lock:
            if self._lanes is not None:
                key = ids.get("request_id") or notice
                lane = self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]
                work = contextvars.copy_context().run
                lane.submit(work, self._deliver, notifier, notice, args, kwargs, ids)
                return
        self._deliver(notifier, notice, args, kwargs, ids)

    def _deliver(
        self,
        notifier: object,
        notice: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ids: dict[str, str],
    ) -> None:
        with bound(notice=notice, **ids):
            try:
                self._deliver_in_order(notifier, notice, args, kwargs, ids)
            except Exception:
                log.exception("slack_notice_lost")

    def _deliver_in_order(
        self,
        notifier: object,
        notice: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ids: dict[str, str],
    ) -> None:
        request_id = ids.get("request_id")
        head = self._oldest_waiting(request_id) if request_id is not None else None
        if head is not None and (head.notice, head.args_json) != (
            notice,
            encode_args(args, kwargs),
        ):
            self._store(notice, args, kwargs, ids, "waiting behind an earlier notice")
            return
        # Either nothing of this request waits, or this very notice is the oldest that does
        # (e.g. a card posted again at start): it goes now.
        stop_by = self._stop_by
        if stop_by is not None and time.monotonic() > stop_by:
            self._store(notice, args, kwargs, ids, "not sent before the bot stopped")
            return
        try:
            _undecorated(notifier, notice)(*args, **kwargs)
        except Exception as exc:
            error = describe(exc)
            metrics.SLACK_API_ERRORS.labels(notice=notice).inc()
            log.warning("slack_notice_failed", error=error, attempt=1)
            self._store(notice, args, kwargs, ids, error, attempts=1)
            return
        log.debug("slack_notice_sent")
        if head is not None and request_id is not None:
            self._delivered(head.id, request_id)

    def _oldest_waiting(self, request_id: str) -> PendingNotice | None:
        """The request's oldest notice in the table; the table is read only while this process
        knows the request has one."""
        if not self._is_waiting(request_id):
            return None
        with reading(self.db) as db:
            head = db.scalars(
                select(PendingNotice)
                .where(PendingNotice.request_id == request_id, PendingNotice.failed_at.is_(None))
                .order_by(PendingNotice.id)
                .limit(1)
            ).first()
        if head is None:  # sent meanwhile, e.g. by another replica
            with self._lock:
                if self._waiting is not None:
                    self._waiting.discard(request_id)
        return head

    def _delivered(self, row_id: int, request_id: str) -> None:
        """The kept notice `row_id` went out; once a request has none left waiting, its
        notices go straight out again."""
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is not None:
                db.delete(row)
        self._oldest_waiting(request_id)

    def _store(
        self,
        notice: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ids: dict[str, str],
        error: str,
        attempts: int = 0,
    ) -> None:
        """Keep the notice for `resend`; the same notice already waiting is not added twice."""
        encoded = encode_args(args, kwargs)
        if encoded is None:
            log.error("slack_notice_lost", reason="its arguments cannot be stored", error=error)
            return
        now = clock.now()
        with transaction(self.db) as db:
            row = db.scalars(
                select(PendingNotice).where(
                    PendingNotice.notice == notice,
                    PendingNotice.args_json == encoded,
                    PendingNotice.failed_at.is_(None),
                )
            ).first()
            if row is None:
                row = PendingNotice(
                    notice=notice,
                    request_id=ids.get("request_id"),
                    session_id=ids.get("session_id"),
                    args_json=encoded,
                    attempts=attempts,
                    created_at=now,
                    next_attempt_at=now + self._backoff(attempts) if attempts else now,
                )
                db.add(row)
            elif attempts:  # it was just tried again, live (e.g. a card posted at start)
                row.attempts += attempts
                row.next_attempt_at = now + self._backoff(row.attempts)
            row.last_error = error
        if row.request_id is not None:
            with self._lock:
                if self._waiting is not None:
                    self._waiting.add(row.request_id)
        retry_at = row.next_attempt_at.isoformat() if row.next_attempt_at else None
        log.info("slack_notice_kept", reason=error, retry_at=retry_at)

    def _is_waiting(self, request_id: str) -> bool:
        """Does this request have a notice in the table (as far as this process knows: read
        once, then kept up to date by this process and by every resend pass)?"""
        with self._lock:
            if self._waiting is None:
                self._waiting = self._read_waiting()
            return request_id in self._waiting

    def _read_waiting(self) -> set[str]:
        with reading(self.db) as db:
            return set(
                db.scalars(
                    select(PendingNotice.request_id).where(
                        PendingNotice.failed_at.is_(None), PendingNotice.request_id.is_not(None)
                    )
                )
            )

    def _backoff(self, attempts: int) -> timedelta:
        settings = self.settings
        return backoff(
            attempts, settings.notice_retry_base_seconds, settings.notice_retry_max_seconds
        )

    # --- sending again ---
    def resend(self, notifier: object) -> Resent:
        """One pass over the waiting notices, oldest first: each request's due notices in order,
        stopping at the first that fails again."""
        result = Resent()
        stalled: set[str] = set()  # requests whose notice failed again in this pass
        for row_id, notice, encoded, request_id, session_id in self._claim():
            if request_id is not None and request_id in stalled:
                self._release(row_id)
                continue
            with bound(notice=notice, request_id=request_id, session_id=session_id):
                if not self._resend_one(notifier, row_id, notice, encoded, result):
                    stalled.add(request_id or "")
        with self._lock:
            self._waiting = self._read_waiting()
        return result

    def _claim(self) -> list[tuple[int, str, str, str | None, str | None]]:
        """Due rows, leased for this pass. A request whose oldest waiting notice is not due
        holds back its later ones."""
        now = clock.now()
        held: set[str] = set()
        claimed: list[tuple[int, str, str, str | None, str | None]] = []
        with transaction(self.db) as db:
            rows = db.scalars(
                select(PendingNotice)
                .where(PendingNotice.failed_at.is_(None))
                .order_by(PendingNotice.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                if row.request_id is not None and row.request_id in held:
                    continue
                if row.next_attempt_at is not None and row.next_attempt_at > now:
                    if row.request_id is not None:
                        held.add(row.request_id)
                    continue
                row.next_attempt_at = now + RESEND_LEASE
                claimed.append((row.id, row.notice, row.args_json, row.request_id, row.session_id))
        return claimed

    def _resend_one(
        self,
        notifier: object,
        row_id: int,
        notice: str,
        encoded: str,
        result: Resent,
    ) -> bool:
        """Send one row again; False when it failed and will be tried later."""
        try:
            with reading(self.db) as db:
                args, kwargs = decode_args(db, encoded)
            deliver = _undecorated(notifier, notice)
        except LookupError as exc:
            self._give_up(row_id, str(exc), result)
            return True
        try:
            deliver(*args, **kwargs)
        except Exception as exc:
            metrics.SLACK_API_ERRORS.labels(notice=notice).inc()
            return self._failed_again(row_id, describe(exc), result)
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is not None:
                db.delete(row)
        result.sent.append(row_id)
        log.info("slack_notice_delivered", notice_id=row_id)
        return True

    def _failed_again(self, row_id: int, error: str, result: Resent) -> bool:
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is None:
                return True  # gone meanwhile: nothing left to send
            row.attempts += 1
            row.last_error = error
            attempts = row.attempts
            retry_at = clock.now() + self._backoff(attempts)
            row.next_attempt_at = retry_at
        if attempts >= self.settings.notice_max_attempts:
            self._give_up(row_id, error, result)
            return True
        result.failed.append(row_id)
        log.warning(
            "slack_notice_failed", error=error, attempt=attempts, retry_at=retry_at.isoformat()
        )
        return False

    def _give_up(self, row_id: int, error: str, result: Resent) -> None:
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is None:
                return
            row.failed_at = clock.now()
            row.next_attempt_at = None
            row.last_error = error
            attempts = row.attempts
        result.given_up.append(row_id)
        log.error("slack_notice_given_up", notice_id=row_id, attempts=attempts, error=error)

    def _release(self, row_id: int) -> None:
        """Hand back a row claimed in this pass but not tried (an earlier one failed)."""
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is not None and row.failed_at is None:
                row.next_attempt_at = clock.now()


def outbox_of(notifier: object) -> NoticeOutbox | None:
    """The outbox this notifier sends through (notices.use_outbox), if any."""
    outbox = getattr(notifier, "outbox", None)
    return outbox if isinstance(outbox, NoticeOutbox) else None


def resend_pending_notices(ctx: AppContext) -> Resent:
    """The scheduler job: send the waiting notices again (nothing to do without Slack)."""
    outbox = outbox_of(ctx.notify)
    return outbox.resend(ctx.notify) if outbox is not None else Resent()
