"""Streaming the audit trail to each sink: at least once, in seq order, never skipping an event,
from a durable cursor per sink (`audit_sink_cursors`) that replicas share.

How one run delivers to one sink:
1. Claim. One transaction locks the sink's cursor row (`FOR UPDATE SKIP LOCKED` on PostgreSQL:
   a replica claiming it right now is skipped, not waited for) and, unless another process
   holds an unexpired lease or the sink is backing off after a failure, takes the lease (a
   random owner and LEASE from now) and commits. So on any number of replicas one delivers at a
   time; the others stand by, and take over when a lease runs out (a replica that died).
2. Batch. The events after `delivered_seq`, in seq order, at most BATCH of them (keyset reads on
   the unique seq: memory is bounded by a batch, never by the backlog), cut by the sink (S3:
   one minute). Its last seq is written to `sending_through` before it is sent; a batch left
   there by a failure or a crash is sent again exactly as it was (same seqs, same idempotency
   key) before anything newer.
3. Send, then advance. After the sink took the whole batch, one transaction moves
   `delivered_seq` to its last seq, clears the error and renews the lease, but only if the lease
   is still ours and the cursor still where we left it (compare and set). A crash between the
   send and that commit sends the batch again: at least once, de-duplicable by seq and hash.
4. Failure. Any error leaves the cursor where it was, counts an attempt, keeps the error
   (redacted, short) and waits `backoff` (AUDIT_SINK_RETRY_*) before the next try. Events
   are never skipped: a sink down for an hour gets everything, in order, when it is back.

A run stops after RUN_SECONDS for a sink (the lease renewed after each batch); the next tick
goes on from the cursor, so a long backlog does not hold up a graceful stop.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import clock, metrics
from app.audit_sinks.sinks import Batch, Sink, SinkError, build_sink
from app.audit_sinks.targets import SinkTarget, configured
from app.config import Settings
from app.db import reading, transaction
from app.models import AuditEvent
from app.models_features import AuditSinkCursor
from app.operations.common import backoff
from app.text import short

log = structlog.get_logger(__name__)

BATCH = 500
LEASE = timedelta(minutes=2)
RUN_SECONDS = 30.0
_CURSORS = cast(Table, AuditSinkCursor.__table__)


class LeaseLost(Exception):
    """Another process took the sink over (our lease ran out): stop, it carries on."""


@dataclass
class Delivery:
    """What one run did for one sink."""

    sink: str
    events: int = 0
    batches: int = 0
    through: int | None = None  # delivered_seq after the run
    skipped: str | None = None  # why nothing was tried: another process, or backing off
    error: str | None = None


def deliver_to_all(settings: Settings, db: sessionmaker[Session]) -> list[Delivery]:
    """One run over every configured sink, one after the other."""
    return [
        deliver_to(target, build_sink(target, settings), settings, db)
        for target in configured(settings)
    ]


def deliver_to(
    target: SinkTarget, sink: Sink, settings: Settings, db: sessionmaker[Session]
) -> Delivery:
    """Deliver what the sink has not had yet (see the module docstring)."""
    owner = secrets.token_hex(8)
    result = Delivery(target.shown)
    claimed = _claim(db, target, owner)
    if isinstance(claimed, str):
        result.skipped = claimed
        return result
    delivered, sending = claimed
    started = time.monotonic()
    try:
        while time.monotonic() - started < RUN_SECONDS:
            batch = _next_batch(db, sink, owner, target, delivered, sending)
            if batch is None:
                break
            sink.send(batch)
            _advance(db, target, owner, delivered, batch.last)
            delivered, sending = batch.last, None
            result.events += len(batch.events)
            result.batches += 1
    except LeaseLost:
        log.warning("audit_sink_lease_lost", sink=target.shown, through=delivered)
        result.skipped = "taken over by another process"
        return result
    except Exception as exc:
        result.error = _describe(exc)
        _failed(db, target, owner, settings, result.error)
        return result
    finally:
        result.through = delivered
    _release(db, target, owner)
    if result.events:
        log.info("audit_sink_delivered", sink=target.shown, events=result.events, through=delivered)
    return result


def _describe(exc: Exception) -> str:
    if isinstance(exc, SinkError):
        return short(str(exc), 500)
    log.exception("audit_sink_error")
    return short(f"{type(exc).__name__}: {exc}", 500)


def _claim(
    db: sessionmaker[Session], target: SinkTarget, owner: str
) -> tuple[int, int | None] | str:
    """Take the sink's lease: (delivered_seq, sending_through), or why not."""
    now = clock.now()
    try:
        with transaction(db) as session:
            row = session.scalars(
                select(AuditSinkCursor)
                .where(AuditSinkCursor.sink_id == target.id)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                if _exists(session, target):
                    return "being claimed by another process"
                row = AuditSinkCursor(sink_id=target.id, delivered_seq=0, attempts=0)
                session.add(row)
            elif row.lease_until is not None and row.lease_until > now:
                return "delivered by another process"
            elif row.next_attempt_at is not None and row.next_attempt_at > now:
                return "waiting to retry"
            row.sink_url = target.shown
            row.lease_owner, row.lease_until, row.updated_at = owner, now + LEASE, now
            return row.delivered_seq, row.sending_through
    except IntegrityError:  # another replica made the row at the same moment
        return "being claimed by another process"


def _exists(session: Session, target: SinkTarget) -> bool:
    """Whether the row is there but locked (skipped), as opposed to not made yet."""
    found = session.scalar(select(_CURSORS.c.sink_id).where(_CURSORS.c.sink_id == target.id))
    return found is not None


def _next_batch(
    db: sessionmaker[Session],
    sink: Sink,
    owner: str,
    target: SinkTarget,
    delivered: int,
    sending: int | None,
) -> Batch | None:
    """The batch to send now: the one a failure left, else the next events the sink takes
    (its last seq recorded first); None when there is nothing to send."""
    with reading(db) as session:
        after = select(AuditEvent).where(AuditEvent.seq > delivered).order_by(AuditEvent.seq)
        if sending is not None:
            return Batch.of(session.scalars(after.where(AuditEvent.seq <= sending)).all())
        waiting = session.scalars(after.limit(BATCH)).all()
        rows = sink.cut(waiting, clock.now())
        if not rows:
            return None
        batch = Batch.of(rows)
    _update(db, target, owner, delivered, sending_through=batch.last)
    return batch


def _advance(
    db: sessionmaker[Session], target: SinkTarget, owner: str, delivered: int, through: int
) -> None:
    now = clock.now()
    _update(
        db,
        target,
        owner,
        delivered,
        delivered_seq=through,
        sending_through=None,
        attempts=0,
        last_error=None,
        next_attempt_at=None,
        lease_until=now + LEASE,
        updated_at=now,
    )


def _update(
    db: sessionmaker[Session], target: SinkTarget, owner: str, delivered: int, **values: Any
) -> None:
    """Change the cursor if the lease is still ours and it still stands at `delivered`."""
    with transaction(db) as session:
        changed = session.connection().execute(
            _CURSORS.update()
            .where(
                _CURSORS.c.sink_id == target.id,
                _CURSORS.c.lease_owner == owner,
                _CURSORS.c.delivered_seq == delivered,
            )
            .values(**values)
        )
        if changed.rowcount != 1:
            raise LeaseLost(target.shown)


def _failed(
    db: sessionmaker[Session], target: SinkTarget, owner: str, settings: Settings, error: str
) -> None:
    """Count the failure, keep its error, back off, and give the lease up."""
    metrics.AUDIT_SINK_FAILURES.labels(sink=target.shown).inc()
    now = clock.now()
    with transaction(db) as session:
        row = session.get(AuditSinkCursor, target.id, with_for_update=True)
        if row is None or row.lease_owner != owner:
            return
        row.attempts += 1
        base, cap = settings.audit_sink_retry_base_seconds, settings.audit_sink_retry_max_seconds
        retry_at: datetime = now + backoff(row.attempts, base, cap)
        row.last_error, row.next_attempt_at, row.updated_at = error, retry_at, now
        row.lease_owner = row.lease_until = None
        attempts = row.attempts
    log.warning(
        "audit_sink_failed",
        sink=target.shown,
        error=error,
        attempt=attempts,
        retry_at=retry_at.isoformat(),
    )


def _release(db: sessionmaker[Session], target: SinkTarget, owner: str) -> None:
    with transaction(db) as session:
        session.connection().execute(
            _CURSORS.update()
            .where(_CURSORS.c.sink_id == target.id, _CURSORS.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
