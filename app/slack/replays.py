"""Refuse a signed Slack request seen before, and answer an Events API retry without running it
again; across replicas, because what was seen is kept in the shared database.

Rules relied on:
- Bolt verifies the signature first. `RefuseReplays` is added with `App.use` once the App is
  built; slack_bolt (1.30, `App.__init__` → `_init_middleware_list`) has by then put its own
  middleware in the list, RequestVerification among them, and `use` appends after them. So only
  requests with a valid HMAC and a timestamp within 5 minutes get here, and forged ones leave no
  row. (SSL checks and URL verification are answered before this too; no listener runs for them.)
- A signature is accepted while |now - its timestamp| ≤ 5 minutes (slack_sdk's
  SignatureVerifier), so for at most 10 minutes after it is first seen, on clocks that agree.
  Rows are kept REMEMBER (10 minutes) and deleted by a timer every FORGET_EVERY_SECONDS
  (app/jobs/scheduler.py), so they live 10 to 11 minutes.
- Slack retries an event (`X-Slack-Retry-Num`, a new timestamp and signature, the same
  `event_id`) at most three times within about 5 minutes; its id is kept as long.
- One INSERT per key, committed before the listener runs (with the writes of other requests
  arriving at the same moment: app/group_commit.py): the sha256 of timestamp + signature and,
  for an event, of its event_id. The unique key decides: a key already there is not inserted
  (ON CONFLICT DO NOTHING) and is not returned (RETURNING), so no SELECT is needed. Two replicas
  inserting the same key at once: PostgreSQL makes the second wait for the first to commit;
  SQLite runs one writer at a time. If the database refuses, Bolt answers 500 and no listener
  runs: nothing is done unrecorded.
- The key is recorded before the listener runs, so an event is handled at most once: one whose
  handler failed is not run by Slack's retry. Our only event refreshes the Home tab, which the
  next opening of the tab refreshes again.
- Socket Mode has no signature (the connection is authenticated by the app-level token); the
  event_id check applies there too, since Slack sends an event again when an ack was lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from sqlalchemy import Connection, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite

from app import clock
from app.context import AppContext
from app.db import engine_of, is_postgres
from app.group_commit import GroupCommit
from app.models import SeenSlackRequest

log = structlog.get_logger(__name__)

#: How long a request or event id is remembered: a signature is good 5 minutes either side of
#: its timestamp, so for 10 minutes at most.
REMEMBER = timedelta(minutes=10)
#: How often the timer deletes what is older than REMEMBER.
FORGET_EVERY_SECONDS = 60.0


class RefuseReplays(Middleware):
    """Bolt global middleware: a replayed request gets 401, a repeated event 200, and neither
    reaches a listener."""

    def __init__(self, writes: GroupCommit) -> None:
        self._writes = writes

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        timestamp = _header(req, "x-slack-request-timestamp")
        signature = _header(req, "x-slack-signature")
        signed = req.mode != "socket_mode" and bool(timestamp and signature)
        request_key = _digest("request", timestamp, signature) if signed else None
        event_id = _event_id(req.body)
        event_key = _digest("event", event_id) if event_id else None
        keys = [key for key in (request_key, event_key) if key]
        if not keys:
            return next()
        # committed before the listener runs, with the other requests' writes of this moment
        new = self._writes.write(lambda db: remember(db.connection(), keys))
        if request_key and request_key not in new:
            log.warning("slack_request_replayed", slack_timestamp=timestamp)
            return BoltResponse(status=401, body={"error": "replayed request"})
        if event_key and event_key not in new:
            retry = _header(req, "x-slack-retry-num")
            log.info("slack_event_repeated", event_id=event_id, retry_num=retry or None)
            return BoltResponse(status=200, body="")
        return next()


def remember(connection: Connection, keys: list[str]) -> set[str]:
    """Record `keys` as seen now, in the caller's transaction; return those that were not
    there yet (INSERT … ON CONFLICT DO NOTHING RETURNING: no SELECT)."""
    statement = _REMEMBER["postgresql" if is_postgres(connection) else "sqlite"]
    now = clock.now()
    new: set[str] = set()
    for key in keys:
        new.update(connection.scalars(statement, {"key": key, "seen_at": now}))
    return new


def _remember(insert: Any) -> Any:
    """One statement object per dialect, so SQLAlchemy compiles it once."""
    return (
        insert(SeenSlackRequest)
        .values(key=bindparam("key"), seen_at=bindparam("seen_at"))
        .on_conflict_do_nothing(index_elements=[SeenSlackRequest.key])
        .returning(SeenSlackRequest.key)
    )


_REMEMBER = {"postgresql": _remember(postgresql.insert), "sqlite": _remember(sqlite.insert)}


def forget_old_slack_requests(ctx: AppContext) -> int:
    """The timer's job: delete what was seen more than REMEMBER ago; how many rows went."""
    cutoff = clock.now() - REMEMBER
    with engine_of(ctx.db).begin() as connection:
        old = delete(SeenSlackRequest).where(SeenSlackRequest.seen_at < cutoff)
        return connection.execute(old).rowcount


def _digest(kind: str, *parts: str) -> str:
    return hashlib.sha256(":".join((kind, *parts)).encode()).hexdigest()


def _header(req: BoltRequest, name: str) -> str:
    values = req.headers.get(name) or [""]
    return str(values[0])


def _event_id(body: Any) -> str | None:
    if isinstance(body, dict) and body.get("type") == "event_callback":
        event_id = body.get("event_id")
        return event_id if isinstance(event_id, str) and event_id else None
    return None
