"""The audit trail: one row per step of every access, written in the same transaction as the step.

Events: requested, approved, denied, granted, grant_failed, grant_retried, expired, released,
admin_ended, revoke_failed, revoked, revoke_skipped (another session still holds the same
access), closeout_prompted, closeout_reminder, closeout; from reconciliation drift_detected,
drift_revoked, drift_revoke_failed, access_missing; from step-up approvals step_up_started and
step_up_failed (with its reason).

Rules it keeps:
- Append-only. The application never updates or deletes an event (a session-level guard
  refuses it); on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE as well.
- Tamper-evident. Events form one hash chain: `seq` counts 1, 2, 3 … without gaps, and
  `hash = sha256(prev_hash + canonical JSON of the event)`, with 64 zeros before the first.
  `verify()` recomputes it and names the first event that does not fit.
- One chain, however many writers. Appending locks the single `audit_chain_head` row
  (FOR UPDATE on PostgreSQL; SQLite's write lock), so concurrent replicas queue, never fork.
  The head is read once per transaction and written once, just before its commit; events are
  inserted in Core as they are recorded (no unit of work for rows nothing ever changes).
- Each event says which policy was in force: `policy_sha256`, the sha256 of the policy file,
  read from what the session's factory was given under POLICY_IN_FORCE (app/context.py). It is
  hashed only when present, so events written before it existed (migration 0009) still verify.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, event, select
from sqlalchemy.orm import ORMExecuteState, Session

from app import clock
from app.models import AccessRequest, AccessSession, AuditChainHead, AuditEvent

SYSTEM_ACTOR = "prod-access"
GENESIS = "0" * 64
HEAD_ID = 1
#: Session.info key: the object whose `policy_sha256` says which policy is in force.
POLICY_IN_FORCE = "prod_access.policy_in_force"


class AppendOnlyError(RuntimeError):
    """Something tried to change or remove an audit event."""


def canonical(event: AuditEvent) -> str:
    """The event as the hash sees it: sorted keys, no spaces, UTC times to the microsecond.
    Kept apart from `as_dict` (the export) on purpose: a new export column must never change
    the hash of events already written."""
    hashed: dict[str, Any] = {
        "seq": event.seq,
        "at": iso(event.at),
        "event": event.event,
        "actor": event.actor,
        "request_id": event.request_id,
        "session_id": event.session_id,
        "system": event.system_id,
        "role": event.role_id,
        "ticket": event.ticket,
        "detail": json.loads(event.detail_json or "{}"),
    }
    if event.policy_sha256 is not None:  # absent from events written before 0009
        hashed["policy_sha256"] = event.policy_sha256
    return json.dumps(
        hashed,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + canonical(event)).encode("utf-8")).hexdigest()


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, to the microsecond (what exports and the hash use)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def present(**detail: Any) -> dict[str, Any]:
    """The detail entries that have a value (None, "", False and empty lists are left out), to
    spread into `record(**…)` for what an event only sometimes carries."""
    return {key: value for key, value in detail.items() if value not in (None, "", False, [])}


def record(
    db: Session,
    event: str,
    actor: str,
    *,
    request: AccessRequest | None = None,
    session: AccessSession | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction."""
    head = _locked_head(db)
    source = request or (session.request if session is not None else None)
    row = AuditEvent(
        seq=head.seq + 1,
        prev_hash=head.hash,
        at=at or clock.now(),
        event=event,
        actor=actor,
        request_id=source.id if source else None,
        session_id=session.id if session is not None else None,
        system_id=source.system_id if source else None,
        role_id=source.role_id if source else None,
        ticket=source.ticket if source else None,
        detail_json=json.dumps(detail, sort_keys=True, default=str, ensure_ascii=False),
        policy_sha256=getattr(db.info.get(POLICY_IN_FORCE), "policy_sha256", None),
    )
    row.hash = chain_hash(row.prev_hash, row)
    head.seq, head.hash = row.seq, row.hash
    values = {c: getattr(row, c) for c in _EVENT_COLUMNS}
    held = db.info.get(_HELD)
    if held is not None and held[0] is db.get_transaction():
        held[1].append(values)  # inserted with the others at the end of `together`
        return row
    # in Core, on the transaction's connection: no unit of work for a row nothing ever changes
    db.connection().execute(_INSERT_EVENT, values)
    return row


@contextmanager
def together(db: Session) -> Iterator[None]:
    """The events recorded in the block (in the caller's transaction) are inserted together
    at its end, in one statement, rather than one INSERT each (the expiry sweep records
    hundreds at a time). Nothing in the block may read the events it recorded."""
    held: tuple[object, list[dict[str, Any]]] = (db.get_transaction(), [])
    db.info[_HELD] = held
    try:
        yield
    finally:
        db.info.pop(_HELD, None)
    if held[1]:
        db.connection().execute(_INSERT_EVENT, held[1])


_HELD = "audit_held_events"


@dataclass
class _Head:
    """Where the chain ends, as this transaction has extended it so far."""

    transaction: object
    seq: int
    hash: str
    stored: tuple[int, str]  # what the row says now


_HEAD = cast(Table, AuditChainHead.__table__)
_INSERT_EVENT = cast(Table, AuditEvent.__table__).insert()
_EVENT_COLUMNS = [c.key for c in AuditEvent.__table__.columns if c.key != "id"]
_READ_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID).with_for_update()
_WRITE_HEAD = (
    _HEAD.update()
    .where(_HEAD.c.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _locked_head(db: Session) -> _Head:
    """The chain head, locked for the rest of this transaction (FOR UPDATE; on SQLite the
    transaction holds the write lock). Read once per transaction, in Core (no ORM flush, no
    identity map): later appends in the same transaction continue from it, and the row is
    written once, just before the commit (`_store_head`)."""
    transaction = db.get_transaction()
    cached = db.info.get("audit_head")
    if isinstance(cached, _Head) and cached.transaction is transaction:
        return cached
    connection = db.connection()  # Core: what the caller added is flushed once, at commit
    row = connection.execute(_READ_HEAD).first()
    if row is None:  # a database migrated before the chain existed is backfilled by 0002
        connection.execute(_HEAD.insert().values(id=HEAD_ID, seq=0, hash=GENESIS))
    seq, last = (row[0], row[1]) if row is not None else (0, GENESIS)
    head = _Head(transaction, seq, last, (seq, last))
    db.info["audit_head"] = head
    return head


@event.listens_for(Session, "before_commit")
def _store_head(db: Session) -> None:
    head = db.info.get("audit_head")
    if (
        isinstance(head, _Head)
        and head.transaction is db.get_transaction()
        and (head.seq, head.hash) != head.stored
    ):
        db.connection().execute(_WRITE_HEAD, {"new_seq": head.seq, "new_hash": head.hash})
        head.stored = (head.seq, head.hash)


@event.listens_for(Session, "before_flush")
def _no_changes_to_events(db: Session, _context: object, _instances: object) -> None:
    for obj in (*db.dirty, *db.deleted):
        if isinstance(obj, AuditEvent) and (obj in db.deleted or db.is_modified(obj)):
            raise AppendOnlyError(f"audit event {obj.id} is append-only")


@event.listens_for(Session, "do_orm_execute")
def _no_bulk_changes_to_events(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditEvent for mapper in state.all_mappers
    ):
        raise AppendOnlyError("audit events are append-only")


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    since: datetime | None = None
    until: datetime | None = None
    system: str | None = None
    user: str | None = None  # the actor, or the person whose request it is
    request_id: str | None = None


def query(where: EventFilter | None = None) -> Select[AuditEvent]:
    """Events in chain order, optionally filtered."""
    statement = select(AuditEvent).order_by(AuditEvent.seq)
    if where is None:
        return statement
    if where.since:
        statement = statement.where(AuditEvent.at >= where.since)
    if where.until:
        statement = statement.where(AuditEvent.at < where.until)
    if where.system:
        statement = statement.where(AuditEvent.system_id == where.system)
    if where.request_id:
        statement = statement.where(AuditEvent.request_id == where.request_id)
    if where.user:
        theirs = select(AccessRequest.id).where(AccessRequest.requester_id == where.user)
        statement = statement.where(
            (AuditEvent.actor == where.user) | AuditEvent.request_id.in_(theirs)
        )
    return statement


def events(db: Session, request_id: str | None = None) -> Iterator[AuditEvent]:
    """Events in the order they happened (optionally for one request)."""
    yield from db.scalars(query(EventFilter(request_id=request_id)))


def stream(
    db: Session, where: EventFilter | None = None, batch: int = 1000
) -> Iterator[AuditEvent]:
    """Events without loading them all: a server-side cursor on PostgreSQL, batches of `batch`
    rows from the cursor elsewhere. The session holds its objects weakly, so rows the caller
    has finished with are freed as it goes."""
    yield from db.execute(
        query(where).execution_options(yield_per=batch, stream_results=True)
    ).scalars()


COLUMNS = (
    "seq",
    "at",
    "event",
    "actor",
    "request_id",
    "session_id",
    "system",
    "role",
    "ticket",
    "detail",
    "policy_sha256",
    "prev_hash",
    "hash",
)


def as_dict(event: AuditEvent) -> dict[str, Any]:
    """One event as exported: the stable COLUMNS, times in ISO 8601 UTC."""
    return {
        "seq": event.seq,
        "at": iso(event.at),
        "event": event.event,
        "actor": event.actor,
        "request_id": event.request_id,
        "session_id": event.session_id,
        "system": event.system_id,
        "role": event.role_id,
        "ticket": event.ticket,
        "detail": event.detail,
        "policy_sha256": event.policy_sha256,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


# --- verifying -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    event_id: int | None = None
    seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.count} audit events, chain intact"
        return f"BROKEN at event {self.event_id} (seq {self.seq}): {self.problem}"


def verify(db: Session) -> Verdict:
    """Walk the whole chain; the first event that does not fit is named, with what differs."""
    previous, expected_seq, count = GENESIS, 1, 0
    last_id: int | None = None
    for row in stream(db):
        count += 1
        if row.seq != expected_seq:
            return Verdict(
                False,
                count,
                row.id,
                row.seq,
                f"expected seq {expected_seq}: {row.seq - expected_seq} event(s) before it "
                "are missing (deleted)",
            )
        if row.prev_hash != previous:
            return Verdict(
                False,
                count,
                row.id,
                row.seq,
                f"prev_hash {row.prev_hash[:12]}… does not match the hash of the event "
                f"before it ({previous[:12]}…): that event was changed or replaced",
            )
        computed = chain_hash(previous, row)
        if computed != row.hash:
            return Verdict(
                False,
                count,
                row.id,
                row.seq,
                f"its content does not match its hash (stored {row.hash[:12]}…, computed "
                f"{computed[:12]}…): the event was edited after it was written; as stored "
                f"now: {canonical(row)}",
            )
        previous, expected_seq, last_id = row.hash, expected_seq + 1, row.id
    head = db.get(AuditChainHead, HEAD_ID)
    if head is not None and (head.seq != count or head.hash != previous):
        return Verdict(
            False,
            count,
            last_id,
            count,
            f"the chain ends at seq {count} but its head says seq {head.seq}: the last "
            f"{head.seq - count} event(s) were deleted",
        )
    return Verdict(True, count)
