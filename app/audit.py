"""The audit trail: one row per step of every access, written in the same transaction as the step.

Events: requested, approved, denied, granted, grant_failed, grant_retried, expired, released,
admin_ended, revoke_failed, revoked, revoke_skipped (another session still holds the same
access), closeout_prompted, closeout_reminder, closeout. Rows are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.models import AccessRequest, AccessSession, AuditEvent

SYSTEM_ACTOR = "prod-access"


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
    """Add one audit event to the current transaction."""
    source = request or (session.request if session is not None else None)
    row = AuditEvent(
        at=at or clock.now(),
        event=event,
        actor=actor,
        request_id=source.id if source else None,
        session_id=session.id if session is not None else None,
        system_id=source.system_id if source else None,
        role_id=source.role_id if source else None,
        ticket=source.ticket if source else None,
        detail_json=json.dumps(detail, sort_keys=True, default=str),
    )
    db.add(row)
    return row


def events(db: Session, request_id: str | None = None) -> Iterator[AuditEvent]:
    """Audit events in the order they happened (optionally for one request)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if request_id:
        query = query.where(AuditEvent.request_id == request_id)
    yield from db.scalars(query)


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat().replace("+00:00", "Z"),
        "event": event.event,
        "actor": event.actor,
        "request_id": event.request_id,
        "session_id": event.session_id,
        "system": event.system_id,
        "role": event.role_id,
        "ticket": event.ticket,
        "detail": event.detail,
    }
