"""Apply an approved session's access through its provider: granting → active | grant_failed.

The intent (`granting`) was committed with the approval; here the person's provider identity is
resolved and stored, the provider is called outside any transaction, and the outcome recorded.
Calling this twice (a retry, a crash recovery) is safe: it acts only on `granting`, and
providers treat a repeated grant as success.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from enum import StrEnum

import structlog
from sqlalchemy.orm import Session

from app import audit, clock, metrics
from app.context import AppContext
from app.db import transaction
from app.models import AccessSession, EndReason, ReviewState, SessionState
from app.operations import people
from app.operations.common import (
    INTENT_LEASE,
    access_of,
    backoff,
    check_requester_or_approver,
    holder_lock,
    load_locked,
    provider_for,
    provider_note,
    read_row,
)
from app.operations.end_session import end_session, revoke_claimed, start_ending
from app.operations.errors import ConflictError, NotAllowed, OperationError
from app.operations.ticket_comments import comment_on_ticket
from app.policy_values import format_duration
from app.providers.base import ProviderError
from app.text import short
from app.trackers.comments import TicketEvent

log = structlog.get_logger(__name__)
#: The longest wait between two checks of a grant whose outcome is unknown.
RECHECK_MAX = timedelta(seconds=15)


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
    outcome = Outcome.refused
    if error is None:
        # The provider is told when the access will end (its own safety net); the session's
        # real window starts when the grant is confirmed, a moment later.
        planned_end = clock.now() + timedelta(seconds=session.request.duration_seconds)
        try:
            provider = provider_for(ctx, session.system_id)
            with holder_lock(session), metrics.GRANT_SECONDS.time():
                note = provider.grant(replace(access_of(session), expires_at=planned_end))
            outcome = Outcome.granted
        except OperationError as exc:
            error = short(exc)
        except ProviderError as exc:
            error = short(exc)
            if exc.retryable:  # not a clear refusal: the grant may have landed all the same
                outcome = _ask_provider(ctx, session)
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.granting:
            return session
        if outcome == Outcome.granted:
            _record_granted(db, session, note, after_error=error)
        else:
            _record_not_granted(db, ctx, session, outcome, error or "unknown error")
    if session.state == SessionState.active:
        if ctx.expiry_set is not None and session.expires_at is not None:
            ctx.expiry_set(session.expires_at)  # committed: the expiry timer can see it
        ctx.notify.session_granted(session)
        comment_on_ticket(ctx, session, TicketEvent.granted)
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


class Outcome(StrEnum):
    """What is known about a grant call: done, refused (nothing granted), or unknown."""

    granted = "granted"  # the provider said so, or `check` found it after an unclear error
    refused = "refused"  # a clear refusal, or `check` found nothing after an unclear error
    unknown = "unknown"  # an unclear error, and `check` could not answer either


def _ask_provider(ctx: AppContext, session: AccessSession) -> Outcome:
    """After a grant error that is not a clear refusal (a timeout, a 5xx, a dropped
    connection), the access may be in place all the same: ask the provider's `check`."""
    present, error = _check_access(ctx, session)
    if error is not None:
        log.warning("grant_check_failed", session_id=session.id, error=error)
        return Outcome.unknown
    return Outcome.granted if present else Outcome.refused


def _check_access(ctx: AppContext, session: AccessSession) -> tuple[bool, str | None]:
    """(present, None) as the provider's `check` says, under the holder lock; (False, why)
    when it could not answer."""
    try:
        provider = provider_for(ctx, session.system_id)
        with holder_lock(session):
            return provider.check(access_of(session)), None
    except (ProviderError, OperationError) as exc:
        return False, short(exc)


def _record_granted(
    db: Session, session: AccessSession, note: str | None, after_error: str | None
) -> None:
    """granting → active: the window starts now. `after_error`: the grant call failed, yet
    `check` found the access in place (the answer was lost, not the grant)."""
    now = clock.now()
    confirmed = audit.present(confirmed_by_check_after=after_error)
    session.state = SessionState.active
    session.granted_at = now
    session.expires_at = now + timedelta(seconds=session.request.duration_seconds)
    session.next_attempt_at = None
    session.last_error = None
    audit.record(
        db,
        "granted",
        audit.SYSTEM_ACTOR,
        session=session,
        identity=session.identity,
        grant=session.grant_name,
        expires_at=session.expires_at.isoformat(),
        **confirmed,
        **provider_note(note),
    )


def _record_not_granted(
    db: Session, ctx: AppContext, session: AccessSession, outcome: Outcome, error: str
) -> None:
    """granting → grant_failed (nothing granted) or grant_unknown (checked again with backoff;
    revoked if found: `confirm_grant`)."""
    metrics.GRANT_FAILURES.inc()
    session.last_error = error
    session.attempts += 1
    if outcome == Outcome.unknown:
        session.state = SessionState.grant_unknown
        session.next_attempt_at = clock.now() + recheck_delay(ctx, 1)
        audit.record(
            db,
            "grant_unknown",
            audit.SYSTEM_ACTOR,
            session=session,
            error=error,
            next_check_at=session.next_attempt_at.isoformat(),
        )
        return
    session.state = SessionState.grant_failed
    session.next_attempt_at = None
    audit.record(db, "grant_failed", audit.SYSTEM_ACTOR, session=session, error=error)


def recheck_delay(ctx: AppContext, attempts: int) -> timedelta:
    """When to ask the provider again about a grant whose outcome is unknown: the revoke
    backoff, but never more than RECHECK_MAX apart, so access that turns up is found soon."""
    base = ctx.settings.revoke_retry_base_seconds
    return backoff(attempts, base, min(RECHECK_MAX.total_seconds(), base * 8))


def confirm_grant(ctx: AppContext, session_id: str) -> AccessSession:
    """A grant whose outcome is unknown (`grant_unknown`, claimed by the sweep): ask the
    provider again. Found in place → revoked at once (nobody was told it was granted, and its
    window was not kept: nothing is left standing); absent → `grant_failed`; no answer → asked
    again after `recheck_delay`."""
    session = read_row(ctx, AccessSession, session_id)
    if session.state != SessionState.grant_unknown:
        return session
    present, error = _check_access(ctx, session)
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.grant_unknown:
            return session
        if error is not None:
            session.attempts += 1
            session.last_error = error
            session.next_attempt_at = clock.now() + recheck_delay(ctx, session.attempts)
            if session.attempts == ctx.settings.revoke_alert_after:  # once, not every 15 s
                audit.record(
                    db,
                    "grant_check_failing",
                    audit.SYSTEM_ACTOR,
                    session=session,
                    error=error,
                    attempts=session.attempts,
                )
        elif present:
            start_ending(db, session, EndReason.unconfirmed, audit.SYSTEM_ACTOR)
        else:
            session.state = SessionState.grant_failed
            session.next_attempt_at = None
            audit.record(db, "grant_not_found", audit.SYSTEM_ACTOR, session=session)
    if session.state == SessionState.revoking:
        return revoke_claimed(ctx, session)
    if session.state == SessionState.grant_failed:
        ctx.notify.grant_failed(session)
    else:
        log.warning("grant_still_unknown", session_id=session.id, error=error)
    return session


def _resolve_identity(
    ctx: AppContext, session: AccessSession
) -> tuple[str | None, str | None, str | None]:
    """(identity, email, error): who the person is at the provider, or why that is unknown.
    Requests made since identities are settled at request time carry it; older ones resolve
    it now, under the same rules."""
    if session.identity:
        return session.identity, session.email, None
    system = ctx.policy.system(session.system_id)
    if system is None:
        return None, None, f"system {session.system_id} is no longer in the policy"
    try:
        identity, email = people.identity_of(ctx, system, session.requester_id)
        return identity, email, None
    except (ValueError, OperationError) as exc:
        return None, None, short(exc)


def retry_grant(ctx: AppContext, session_id: str, user_id: str) -> AccessSession:
    """A failed grant tried again by an approver or the requester: grant_failed → granting.
    Only soon after the approval (`retry_within`), never for a flagged break-glass, and only
    while the policy in force now still allows this system, role, person and identity."""
    current = read_row(ctx, AccessSession, session_id)
    check_requester_or_approver(ctx, current, user_id, "retry this grant")
    if current.state != SessionState.grant_failed:
        raise ConflictError(f"Session {current.id} is {current.state.value}, not failed.")
    check_retry_allowed(ctx, current)
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.grant_failed:
            raise ConflictError(f"Session {session.id} is {session.state.value}, not failed.")
        session.state = SessionState.granting
        session.next_attempt_at = clock.now() + INTENT_LEASE
        audit.record(db, "grant_retried", user_id, session=session)
    return grant_session(ctx, session_id)


def check_retry_allowed(ctx: AppContext, session: AccessSession) -> None:
    """NotAllowed, saying why, unless a failed grant may be tried again now (see retry_grant).
    Asks the directory (outside any transaction) when the identity comes from an email."""
    request = session.request
    if request.review_state == ReviewState.flagged:
        raise NotAllowed(
            f"{request.id} was flagged in its break-glass review; it is not granted again."
        )
    system, role = ctx.policy.system_and_role(session.system_id, session.role_id)
    if system is None or role is None:
        raise NotAllowed(f"{session.system_id} {session.role_id} is no longer in the policy.")
    deadline = ctx.policy.retry_until(system, request.decided_at or session.created_at)
    if clock.now() > deadline:
        window = format_duration(ctx.policy.retry_within(system))
        raise NotAllowed(
            f"The approval of {request.id} was for then: a failed grant can be retried within "
            f"{window} of its approval. Ask for the access again."
        )
    if role.grant != session.grant_name:
        raise NotAllowed(
            f"The policy changed: {system.id} {role.id} now grants {role.grant}, not "
            f"{session.grant_name}. Ask for the access again."
        )
    people.check_still_requester(ctx, session)
    if session.identity:
        who = people.mention(session.requester_id)  # the only person these refusals name
        try:
            identity, _ = people.identity_of(ctx, system, session.requester_id)
        except ValueError as exc:
            raise NotAllowed(
                f"No identity can be given any more: {short(exc)}", mentions=[who]
            ) from None
        if identity != session.identity:
            raise NotAllowed(
                f"The policy now maps {who} to {identity}, not "
                f"{session.identity} as approved. Ask for the access again.",
                mentions=[who],
            )
