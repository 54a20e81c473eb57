"""Sessions as the bot leaves them, inserted directly (thousands at a time) for tests that need
many: the replica and expiry-burst tests."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from app import clock
from app.db import transaction
from app.models import AccessRequest, AccessSession, RequestState, SessionState
from tests.fakes.policy import BOB, LEAD1

_numbers = itertools.count(1)


def seed_sessions(db: sessionmaker[Session], count: int, **columns: Any) -> list[str]:
    """`count` approved requests of BOB on orders-api (write) and their sessions, each for its
    own identity, active for another hour unless `columns` say otherwise; their ids."""
    now = clock.now()
    requests, sessions = [], []
    for _ in range(count):
        n = next(_numbers)
        request_id, session_id = f"R-T{n:07d}", f"S-T{n:07d}"
        requests.append(
            {"id": request_id, "requester_id": BOB, "system_id": "orders-api",
             "role_id": "write", "duration_seconds": 3600, "ticket": f"PAY-{n}",
             "reason": "seeded by a test", "state": RequestState.approved, "created_at": now,
             "decided_by": LEAD1, "decided_at": now}
        )  # fmt: skip
        sessions.append(
            {"id": session_id, "request_id": request_id, "requester_id": BOB,
             "system_id": "orders-api", "role_id": "write", "grant_name": "orders-admin",
             "identity": f"user{n}@example.com", "email": f"user{n}@example.com",
             "state": SessionState.active, "created_at": now, "granted_at": now,
             "expires_at": now + timedelta(hours=1), "attempts": 0, "reminders_sent": 0,
             **columns}
        )  # fmt: skip
    with transaction(db) as session:
        session.execute(insert(AccessRequest), requests)
        session.execute(insert(AccessSession), sessions)
    return [s["id"] for s in sessions]
