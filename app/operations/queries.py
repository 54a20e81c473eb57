"""Read-only questions: a person's open requests and sessions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AccessRequest, AccessSession, RequestState, SessionState

OPEN_SESSION_STATES = (
    SessionState.granting,
    SessionState.active,
    SessionState.revoking,
    SessionState.revoke_failing,
)


def pending_requests(db: Session, user_id: str) -> list[AccessRequest]:
    return list(
        db.scalars(
            select(AccessRequest)
            .where(
                AccessRequest.requester_id == user_id,
                AccessRequest.state == RequestState.pending,
            )
            .order_by(AccessRequest.created_at)
        )
    )


def open_sessions(db: Session, user_id: str) -> list[AccessSession]:
    return list(
        db.scalars(
            select(AccessSession)
            .where(
                AccessSession.requester_id == user_id,
                AccessSession.state.in_(OPEN_SESSION_STATES),
            )
            .order_by(AccessSession.created_at)
        )
    )


def active_sessions(db: Session, user_id: str) -> list[AccessSession]:
    return [s for s in open_sessions(db, user_id) if s.state == SessionState.active]
