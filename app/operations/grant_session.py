"""Apply an approved session's access through its provider: granting → active | grant_failed.

The intent (`granting`) was committed with the approval; here the person's provider identity is
resolved and stored, the provider is called outside any transaction, and the outcome recorded.
Calling this twice (a retry, a crash recovery) is safe: it acts only on `granting`, and
providers treat a repeated grant as success.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from app import audit, clock, metrics
from app.context import AppContext
from app.db import transaction
from app.models import AccessSession, EndReason, ReviewState, SessionState
from app.operations.common import (
    INTENT_LEASE,
    access_of,
    check_requester_or_approver,
    holder_lock,
    load_locked,
    provider_for,
    provider_note,
)
from app.operations.end_session import end_session
from app.operations.errors import ConflictError, OperationError
from app.providers.base import ProviderError
from app.text import short


def grant_session(ctx: AppContext, session_id: str) -> AccessSession:
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.granting:
            return session
    # The directory (Slack users.info) is asked outside any transaction: no lock waits on it.
    identity, email, error = _resolve_identity(ctx, session)
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.granting:
            return session
        session.identity, session.email = identity, email
        session.next_attempt_at = clock.now() + INTENT_LEASE
    note: str | None = None
    if error is None:
        # The provider is told when the access will end (its own safety net); the session's
        # real window starts when the grant is confirmed, a moment later.
        planned_end = clock.now() + timedelta(seconds=session.request.duration_seconds)
        try:
            provider = provider_for(ctx, session.system_id)
            with holder_lock(session), metrics.GRANT_SECONDS.time():
                note = provider.grant(replace(access_of(session), expires_at=planned_end))
        except (ProviderError, OperationError) as exc:
            error = short(exc)
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.granting:
            return session
        now = clock.now()
        session.next_attempt_at = None
        if error is None:
            session.state = SessionState.active
            session.granted_at = now
            session.expires_at = now + timedelta(seconds=session.request.duration_seconds)
            session.last_error = None
            audit.record(
                db,
                "granted",
                audit.SYSTEM_ACTOR,
                session=session,
                identity=session.identity,
                grant=session.grant_name,
                expires_at=session.expires_at.isoformat(),
                **provider_note(note),
            )
        else:
            metrics.GRANT_FAILURES.inc()
            session.state = SessionState.grant_failed
            session.last_error = error
            session.attempts += 1
            audit.record(db, "grant_failed", audit.SYSTEM_ACTOR, session=session, error=error)
    if session.state == SessionState.active:
        ctx.notify.session_granted(session)
        if session.request.review_state == ReviewState.flagged:
            # Flagged in review while the grant was in flight: it ends now.
            return end_session(
                ctx,
                session.id,
                EndReason.flagged,
                session.request.reviewed_by or audit.SYSTEM_ACTOR,
            )
    else:
        ctx.notify.grant_failed(session)
    return session


def _resolve_identity(
    ctx: AppContext, session: AccessSession
) -> tuple[str | None, str | None, str | None]:
    """(identity, email, error): who the person is at the provider, or why that is unknown."""
    if session.identity:
        return session.identity, session.email, None
    system = ctx.policy.system(session.system_id)
    if system is None:
        return None, None, f"system {session.system_id} is no longer in the policy"
    try:
        email = ctx.directory.email_for(session.requester_id)
        return ctx.policy.identity_for(system, session.requester_id, email), email, None
    except (ValueError, OperationError) as exc:
        return None, None, short(exc)


def retry_grant(ctx: AppContext, session_id: str, user_id: str) -> AccessSession:
    """A failed grant tried again by an approver or the requester: grant_failed → granting."""
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        check_requester_or_approver(ctx, session, user_id, "retry this grant")
        if session.state != SessionState.grant_failed:
            raise ConflictError(f"Session {session.id} is {session.state.value}, not failed.")
        session.state = SessionState.granting
        session.next_attempt_at = clock.now() + INTENT_LEASE
        audit.record(db, "grant_retried", user_id, session=session)
    return grant_session(ctx, session_id)
