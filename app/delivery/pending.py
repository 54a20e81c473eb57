"""The table of kept notices (`pending_notices`): a notice Slack refused, or one waiting behind
an earlier notice of its request, stored as its kind, the ids of the request and session it is
about, and its arguments as JSON (rows as ids, read again when it is sent, so it says what is
true by then). The outbox (outbox.py) decides when a notice is kept and sends it again; this
module only reads and writes the rows.

Rows are claimed for a resend pass with a lease (RESEND_LEASE), under `FOR UPDATE SKIP LOCKED`
on PostgreSQL, so two replicas never send the same row at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import clock
from app.config import Settings
from app.db import reading, transaction
from app.delivery.notices import NoticeArg, NoticeKind
from app.models import AccessRequest, AccessSession, PendingNotice
from app.operations.common import backoff

#: A row being re-sent is leased for this long, so other replicas leave it alone.
RESEND_LEASE = timedelta(minutes=2)
BATCH = 200


@dataclass(frozen=True)
class Kept:
    """A kept notice claimed for sending again."""

    id: int
    kind: NoticeKind
    args_json: str
    request_id: str | None
    session_id: str | None


def encode_args(args: tuple[NoticeArg, ...]) -> str:
    """A notice's arguments as JSON: rows as their ids, texts as they are. (The shape, with its
    empty "kwargs", is the one rows have had since the table was made, so the same notice kept
    by an older version compares equal.)"""
    return json.dumps({"args": [_encode(a) for a in args], "kwargs": {}}, sort_keys=True)


def _encode(value: NoticeArg) -> dict[str, str]:
    if isinstance(value, AccessSession):
        return {"session": value.id}
    if isinstance(value, AccessRequest):
        return {"request": value.id}
    return {"value": value}


def decode_args(db: Session, encoded: str) -> tuple[NoticeArg, ...]:
    """The arguments back, rows read again; LookupError when a row no longer exists."""
    return tuple(_decode(db, item) for item in json.loads(encoded)["args"])


def _decode(db: Session, item: dict[str, Any]) -> NoticeArg:
    row: AccessRequest | AccessSession | None
    if "session" in item:
        row = db.get(AccessSession, item["session"])
    elif "request" in item:
        row = db.get(AccessRequest, item["request"])
    else:
        return str(item["value"])
    if row is None:
        raise LookupError(f"{next(iter(item))} {next(iter(item.values()))} no longer exists")
    return row


def kind_of(stored: str) -> NoticeKind:
    """The kind a row stores; LookupError for one this version does not know."""
    try:
        return NoticeKind(stored)
    except ValueError:
        raise LookupError(f"no notice is called {stored}") from None


class PendingNotices:
    def __init__(self, db: sessionmaker[Session], settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def backoff(self, attempts: int) -> timedelta:
        settings = self.settings
        return backoff(
            attempts, settings.notice_retry_base_seconds, settings.notice_retry_max_seconds
        )

    def oldest_of(self, request_id: str) -> PendingNotice | None:
        """The request's oldest notice still to be sent."""
        with reading(self.db) as db:
            return db.scalars(
                select(PendingNotice)
                .where(PendingNotice.request_id == request_id, PendingNotice.failed_at.is_(None))
                .order_by(PendingNotice.id)
                .limit(1)
            ).first()

    def requests_waiting(self) -> set[str]:
        """The requests that have a notice still to be sent."""
        with reading(self.db) as db:
            return set(
                db.scalars(
                    select(PendingNotice.request_id).where(
                        PendingNotice.failed_at.is_(None), PendingNotice.request_id.is_not(None)
                    )
                )
            )

    def keep(
        self,
        kind: NoticeKind,
        encoded: str,
        ids: dict[str, str],
        error: str,
        attempts: int = 0,
    ) -> datetime | None:
        """Keep a notice (the same one already waiting is not added twice); when it is due."""
        now = clock.now()
        with transaction(self.db) as db:
            row = db.scalars(
                select(PendingNotice).where(
                    PendingNotice.notice == kind.value,
                    PendingNotice.args_json == encoded,
                    PendingNotice.failed_at.is_(None),
                )
            ).first()
            if row is None:
                row = PendingNotice(
                    notice=kind.value,
                    request_id=ids.get("request_id"),
                    session_id=ids.get("session_id"),
                    args_json=encoded,
                    attempts=attempts,
                    created_at=now,
                    next_attempt_at=now + self.backoff(attempts) if attempts else now,
                )
                db.add(row)
            elif attempts:  # it was just tried again, live (e.g. a card posted at start)
                row.attempts += attempts
                row.next_attempt_at = now + self.backoff(row.attempts)
            row.last_error = error
            return row.next_attempt_at

    def delete(self, row_id: int) -> None:
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is not None:
                db.delete(row)

    def claim(self) -> list[Kept | tuple[int, str]]:
        """Due rows, oldest first, leased for this pass; a request whose oldest waiting notice
        is not due holds back its later ones. A row of a kind this version does not know comes
        back as (id, why), to be given up."""
        now = clock.now()
        held: set[str] = set()
        claimed: list[Kept | tuple[int, str]] = []
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
                try:
                    kind = kind_of(row.notice)
                except LookupError as exc:
                    claimed.append((row.id, str(exc)))
                    continue
                claimed.append(Kept(row.id, kind, row.args_json, row.request_id, row.session_id))
        return claimed

    def failed_again(self, row_id: int, error: str) -> tuple[int, datetime] | None:
        """Count one more failed attempt: (attempts, when to try next); None if it is gone."""
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is None:
                return None
            row.attempts += 1
            row.last_error = error
            row.next_attempt_at = clock.now() + self.backoff(row.attempts)
            return row.attempts, row.next_attempt_at

    def give_up(self, row_id: int, error: str) -> int | None:
        """Mark the row failed (it stays, for people to read); its attempts, None if gone."""
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is None:
                return None
            row.failed_at = clock.now()
            row.next_attempt_at = None
            row.last_error = error
            return row.attempts

    def release(self, row_id: int) -> None:
        """Hand back a row claimed in this pass but not tried (an earlier one failed)."""
        with transaction(self.db) as db:
            row = db.get(PendingNotice, row_id)
            if row is not None and row.failed_at is None:
                row.next_attempt_at = clock.now()
