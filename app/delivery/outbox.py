"""Notices that never hold up a revoke and are not lost while Slack is down.

The outbox is the notifier operations are handed (`ctx.notify`): each notice they send
(`Notifier.send`: a NoticeKind and its arguments) is delivered by the function the Slack layer
gives it (app/slack/delivery.py). The rules:

- Revoke first, notify after: operations call the notifier after their commit. In the serving
  process (`start()`), a notice is put on a lane and the caller goes on at once, so an expiry
  sweep never waits for Slack, however slow it is; a request's notices share one lane, so they
  go out in the order they were sent. Elsewhere (the CLI, tests driving operations) a notice is
  sent in the caller's thread.
- The Web API client retries rate limits and 5xx itself. A notice that still fails is stored
  in `pending_notices`: its kind, the request and session it is about, and its arguments as
  JSON. Rows are stored as ids and read again when the notice is re-sent, so it says what is
  true by then. `resend` (the job app/jobs/notices.py) delivers it again with backoff, and after
  NOTICE_MAX_ATTEMPTS gives up: an error is logged and the row stays, marked failed.
- While a request has a notice waiting in the table, its later notices wait behind it, so nobody
  reads "access ended" before "access granted". The waiting notice itself, sent again by its
  caller (a card posted at start), goes at once and takes the kept copy along. Comments on a
  ticket (notices.TRACKER_KINDS) wait in a line of their own (`R-…/T`), so a tracker that is down
  never holds up Slack.
- At stop, queued notices are still sent for a few seconds, then stored: none is dropped.

A notice is delivered at least once: one that failed halfway (the card posted, the DM refused)
is sent again whole.
"""

from __future__ import annotations

import contextvars
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.config import Settings
from app.db import reading
from app.delivery.notices import TRACKER_KINDS, NoticeArg, NoticeKind, Notifier, own_line
from app.delivery.pending import Kept, PendingNotices, decode_args, encode_args
from app.logging import bound, ids_of
from app.models import PendingNotice
from app.text import short

log = structlog.get_logger(__name__)
#: At stop, queued notices are still sent for this long; the rest are stored for the next start.
STOP_DRAIN_SECONDS = 5.0

#: Delivers one notice now (to Slack); raises when it could not.
Deliver = Callable[[NoticeKind, tuple[NoticeArg, ...]], None]


@dataclass
class Resent:
    """What one pass of `resend` did, by row id."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)


def _describe(exc: Exception) -> str:
    return short(repr(exc))


class Outbox(Notifier):
    """The notifier operations are handed: delivers each notice with `deliver` (in the caller's
    thread, or on lanes after `start`), keeps the ones that fail in `pending_notices`, and
    delivers those again (`resend`). `describe` turns a delivery error into the short text
    that is logged and kept."""

    def __init__(
        self,
        db: sessionmaker[Session],
        settings: Settings,
        deliver: Deliver,
        describe: Callable[[Exception], str] = _describe,
    ) -> None:
        self.db = db
        self.settings = settings
        self.kept = PendingNotices(db, settings)
        self._deliver_now = deliver
        self._describe = describe
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

    def send(self, kind: NoticeKind, *args: NoticeArg) -> None:
        """Deliver the notice (see the module docstring); never raises."""
        ids = ids_of(*args)
        if kind in TRACKER_KINDS and "request_id" in ids:  # "request_id": the line it waits in
            ids = {**ids, "request_id": own_line(ids["request_id"])}
        with self._lock:
            if self._lanes is not None:
                key = ids.get("request_id") or kind.value
                lane = self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]
                lane.submit(contextvars.copy_context().run, self._deliver, kind, args, ids)
                return
        self._deliver(kind, args, ids)

    def _deliver(self, kind: NoticeKind, args: tuple[NoticeArg, ...], ids: dict[str, str]) -> None:
        with bound(notice=kind.value, **ids):
            try:
                self._deliver_in_order(kind, args, ids)
            except Exception:
                log.exception("slack_notice_lost")

    def _deliver_in_order(
        self, kind: NoticeKind, args: tuple[NoticeArg, ...], ids: dict[str, str]
    ) -> None:
        request_id = ids.get("request_id")
        encoded = encode_args(args)
        head = self._oldest_waiting(request_id) if request_id is not None else None
        if head is not None and (head.notice, head.args_json) != (kind.value, encoded):
            self._keep(kind, encoded, ids, "waiting behind an earlier notice")
            return
        # Either nothing of this request waits, or this very notice is the oldest that does
        # (e.g. a card posted again at start): it goes now.
        stop_by = self._stop_by
        if stop_by is not None and time.monotonic() > stop_by:
            self._keep(kind, encoded, ids, "not sent before the bot stopped")
            return
        try:
            self._deliver_now(kind, args)
        except Exception as exc:
            error = self._describe(exc)
            if kind not in TRACKER_KINDS:  # a tracker's failure is counted as the tracker's
                metrics.SLACK_API_ERRORS.labels(notice=kind.value).inc()
            log.warning("slack_notice_failed", error=error, attempt=1)
            self._keep(kind, encoded, ids, error, attempts=1)
            return
        log.debug("slack_notice_sent")
        if head is not None and request_id is not None:
            self.kept.delete(head.id)
            self._oldest_waiting(request_id)  # none left: its notices go straight out again

    def _oldest_waiting(self, request_id: str) -> PendingNotice | None:
        """The request's oldest notice in the table; the table is read only while this process
        knows the request has one."""
        with self._lock:
            if self._waiting is None:
                self._waiting = self.kept.requests_waiting()
            if request_id not in self._waiting:
                return None
        head = self.kept.oldest_of(request_id)
        if head is None:  # sent meanwhile, e.g. by another replica
            with self._lock:
                if self._waiting is not None:
                    self._waiting.discard(request_id)
        return head

    def _keep(
        self, kind: NoticeKind, encoded: str, ids: dict[str, str], error: str, attempts: int = 0
    ) -> None:
        retry_at = self.kept.keep(kind, encoded, ids, error, attempts)
        request_id = ids.get("request_id")
        if request_id is not None:
            with self._lock:
                if self._waiting is not None:
                    self._waiting.add(request_id)
        log.info(
            "slack_notice_kept", reason=error, retry_at=retry_at.isoformat() if retry_at else None
        )

    # --- sending again ---
    def resend(self) -> Resent:
        """One pass over the kept notices, oldest first: each request's due notices in order,
        stopping at the first that fails again."""
        result = Resent()
        stalled: set[str] = set()  # requests whose notice failed again in this pass
        for claimed in self.kept.claim():
            if not isinstance(claimed, Kept):
                self._give_up(*claimed, result)
                continue
            if claimed.request_id is not None and claimed.request_id in stalled:
                self.kept.release(claimed.id)
                continue
            with bound(
                notice=claimed.kind.value,
                request_id=claimed.request_id,
                session_id=claimed.session_id,
            ):
                if not self._resend_one(claimed, result):
                    stalled.add(claimed.request_id or "")
        with self._lock:
            self._waiting = self.kept.requests_waiting()
        return result

    def _resend_one(self, kept: Kept, result: Resent) -> bool:
        """Send one row again; False when it failed and will be tried later."""
        try:
            with reading(self.db) as db:
                args = decode_args(db, kept.args_json)
        except LookupError as exc:
            self._give_up(kept.id, str(exc), result)
            return True
        try:
            self._deliver_now(kept.kind, args)
        except Exception as exc:
            if kept.kind not in TRACKER_KINDS:
                metrics.SLACK_API_ERRORS.labels(notice=kept.kind.value).inc()
            return self._failed_again(kept.id, self._describe(exc), result)
        self.kept.delete(kept.id)
        result.sent.append(kept.id)
        log.info("slack_notice_delivered", notice_id=kept.id)
        return True

    def _failed_again(self, row_id: int, error: str, result: Resent) -> bool:
        counted = self.kept.failed_again(row_id, error)
        if counted is None:
            return True  # gone meanwhile: nothing left to send
        attempts, retry_at = counted
        if attempts >= self.settings.notice_max_attempts:
            self._give_up(row_id, error, result)
            return True
        result.failed.append(row_id)
        log.warning(
            "slack_notice_failed", error=error, attempt=attempts, retry_at=retry_at.isoformat()
        )
        return False

    def _give_up(self, row_id: int, error: str, result: Resent) -> None:
        attempts = self.kept.give_up(row_id, error)
        if attempts is None:
            return
        result.given_up.append(row_id)
        log.error("slack_notice_given_up", notice_id=row_id, attempts=attempts, error=error)
