"""Read-only questions: a person's open requests and sessions, an approver's queue."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, Select, bindparam, select
from sqlalchemy.orm import Session, selectinload

from app.models import AccessRequest, AccessSession, RequestState, ReviewState, SessionState

OPEN_SESSION_STATES = (
    SessionState.granting,
    SessionState.grant_unknown,
    SessionState.active,
    SessionState.revoking,
    SessionState.revoke_failing,
)


def _same_access(identity: ColumnElement[bool]) -> Select[str]:
    return select(AccessSession.id).where(
        AccessSession.id != bindparam("session_id"),
        AccessSession.system_id == bindparam("system_id"),
        identity,
        AccessSession.grant_name == bindparam("grant_name"),
        AccessSession.state.in_(bindparam("states", expanding=True)),
    )


#: Built once: this runs for every revoke, and building a statement costs more than running it.
#: (An identity not known yet is NULL, matched with IS NULL; `=` would match nothing.)
_SAME_ACCESS = _same_access(AccessSession.identity == bindparam("identity"))
_SAME_ACCESS_NO_IDENTITY = _same_access(AccessSession.identity.is_(None))


def sessions_of_same_access(
    db: Session | Connection, session: AccessSession, states: Iterable[SessionState]
) -> list[str]:
    """Ids of the other sessions in `states` for the same person, grant and system: the ones
    that share this session's access at the provider (on an ORM session or a Core
    connection: only ids are read)."""
    return list(
        db.scalars(
            _SAME_ACCESS if session.identity is not None else _SAME_ACCESS_NO_IDENTITY,
            {
                "session_id": session.id,
                "system_id": session.system_id,
                "identity": session.identity,
                "grant_name": session.grant_name,
                "states": list(states),
            },
        )
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


#: Load a request's approvals with it (for the card and an approver's queue).
with_approvals = selectinload(AccessRequest.approvals)


def pending_all(db: Session, limit: int = 200) -> list[AccessRequest]:
    """Every pending request, oldest first (an approver's queue is filtered from these)."""
    return list(
        db.scalars(
            select(AccessRequest)
            .options(with_approvals)
            .where(AccessRequest.state == RequestState.pending)
            .order_by(AccessRequest.created_at)
            .limit(limit)
        )
    )


def reviews_due(db: Session, limit: int = 100) -> list[AccessRequest]:
    """Break-glass accesses nobody has reviewed yet."""
    return list(
        db.scalars(
            select(AccessRequest)
            .options(with_approvals)
            .where(AccessRequest.review_state == ReviewState.due)
            .order_by(AccessRequest.created_at)
            .limit(limit)
        )
    )


def recent_requests(db: Session, user_id: str, limit: int = 10) -> list[AccessRequest]:
    """A person's latest decided requests, newest first."""
    return list(
        db.scalars(
            select(AccessRequest)
            .where(
                AccessRequest.requester_id == user_id,
                AccessRequest.state != RequestState.pending,
            )
            .order_by(AccessRequest.created_at.desc())
            .limit(limit)
        )
    )


def active_sessions(db: Session, user_id: str) -> list[AccessSession]:
    return [s for s in open_sessions(db, user_id) if s.state == SessionState.active]
