"""A long audit trail, fast: `seed_events` writes `count` chained events in bulk (a thousand rows
per INSERT), each as `audit.record` would have made it, for the tests and bench scripts that
need tens of thousands of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, update

from app.audit import GENESIS, HEAD_ID, chain_hash
from app.models import AuditChainHead, AuditEvent

CHUNK = 1000
COLUMNS = [c.key for c in AuditEvent.__table__.columns if c.key != "id"]


def seed_events(engine: Engine, count: int, start: datetime | None = None) -> None:
    """Events 1..count, a second apart from `start`, on an empty, migrated database."""
    start = start or datetime(2026, 9, 1, tzinfo=UTC)
    previous = GENESIS
    with engine.begin() as connection:
        for first in range(1, count + 1, CHUNK):
            rows: list[dict[str, Any]] = []
            for seq in range(first, min(first + CHUNK, count + 1)):
                event = AuditEvent(
                    seq=seq,
                    prev_hash=previous,
                    at=start + timedelta(seconds=seq),
                    event="approved" if seq % 3 else "requested",
                    actor=f"U0APPROVER{seq % 11}",
                    request_id=f"R-{seq:08d}",
                    session_id=None,
                    system_id="checkout-db",
                    role_id="write",
                    ticket=f"PAY-{seq}",
                    detail_json=json.dumps({"reason": f"event {seq} " + "·" * 60}),
                )
                event.hash = previous = chain_hash(previous, event)
                rows.append({key: getattr(event, key) for key in COLUMNS})
            connection.execute(insert(AuditEvent), rows)
        connection.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == HEAD_ID)
            .values(seq=count, hash=previous)
        )
