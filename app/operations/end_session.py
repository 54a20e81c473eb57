"""End a session's access: active → revoking → ended | revoke_failing.

Why it ends (expired, released by the person, ended by an admin) is audited once, when the
session enters `revoking`; that intent is committed before the provider call. Only a
provider-confirmed revoke marks the session `ended`, and it is verified: after `revoke` the
provider's `check` must say the access is gone ("revoke did not take effect: access still
present" otherwise). A failed revoke becomes `revoke_failing` with a next attempt time
(exponential backoff); the expiry sweep retries it until it succeeds.

Overlapping sessions: when another session of the same person still holds the same grant on
the same system, the provider is not called (that would take the other session's access away);
the session ends with `revoke_skipped`, and the last one to end does the real revoke.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import audit, clock, metrics
from app.context import AppContext
from app.db import inserts_together, peeking, transaction
from app.models import (
    HOLDING_STATES,
    AccessSession,
    CloseoutState,
    EndReason,
    SessionState,
)
from app.operations.common import (
    INTENT_LEASE,
    access_of,
    backoff,
    check_requester_or_approver,
    holder_lock,
    load_locked,
    provider_for,
    provider_note,
)
from app.operations.errors import ConflictError, NotFound, OperationError
from app.operations.queries import sessions_of_same_access
from app.operations.ticket_comments import comment_on_ticket
from app.providers.base import AccessGrant, Provider, ProviderError
from app.text import short
from app.trackers.comments import TicketEvent

_AUDIT_EVENT = {
    EndReason.expired: "expired",
    EndReason.released: "released",
    EndReason.admin: "admin_ended",
    EndReason.flagged: "flagged_ended",
    EndReason.unconfirmed: "unconfirmed_found",
    EndReason.incident_resolved: "incident_resolved_ended",
}
REVOCABLE = (SessionState.revoking, SessionState.revoke_failing)


def end_session(
    ctx: AppContext, session_id: str, reason: EndReason, actor: str, note: str | None = None
) -> AccessSession:
    """Start ending a session (checked: the requester or an approver, unless the timer or an
    admin ends it), then revoke. Ending a session that is already ending is a no-op, except
    that a failing revoke is tried again now."""
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        claimed = False
        if reason == EndReason.released:
            check_requester_or_approver(ctx, session, actor, "end this access")
        if session.state == SessionState.active:
            start_ending(db, session, reason, actor, note)
            claimed = True
        elif session.state not in (*REVOCABLE, SessionState.ended):
            raise ConflictError(f"Session {session.id} is {session.state.value}, not active.")
    if claimed:
        return revoke_claimed(ctx, session)
    return revoke_session(ctx, session_id, now=True)


def start_ending(
    db: Session, session: AccessSession, reason: EndReason, actor: str, note: str | None = None
) -> None:
    """active → revoking, in the caller's transaction with the session locked: the audited
    intent, and the caller's claim on the revoke (a lease) that it makes next."""
    if reason == EndReason.expired and session.expires_at:
        lag = (clock.now() - session.expires_at).total_seconds()
        metrics.EXPIRY_LAG_SECONDS.observe(max(0.0, lag))
    session.state = SessionState.revoking
    session.end_reason, session.ended_by = reason, actor
    session.next_attempt_at = clock.now() + INTENT_LEASE
    session.attempts = 0
    audit.record(db, _AUDIT_EVENT[reason], actor, session=session, **audit.present(note=note))


def claim_revoke(session: AccessSession) -> None:
    """Take over a revoke that is due (a failing one's next attempt, or an intent whose lease
    ran out because its worker died): `revoking` with a fresh lease, in the caller's
    transaction with the session locked."""
    session.state = SessionState.revoking
    session.next_attempt_at = clock.now() + INTENT_LEASE


def revoke_session(ctx: AppContext, session_id: str, *, now: bool = False) -> AccessSession:
    """Retry a revoke: claim it first, so that however many workers (sweeps in several
    replicas, a click) try at once, one calls the provider. A claim is `revoking` with a lease;
    a revoke that is due (or any failing one, with `now`) or whose lease ran out (a crash) can
    be claimed; one in another worker's hands is left to it."""
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        due = session.next_attempt_at is None or session.next_attempt_at <= clock.now()
        if session.state == SessionState.revoking and not due:
            return session  # another worker holds the lease
        if session.state not in REVOCABLE or not (due or now):
            return session
        claim_revoke(session)
    return revoke_claimed(ctx, session)


def revoke_claimed(ctx: AppContext, session: AccessSession) -> AccessSession:
    """The provider call for a session this worker has claimed (`revoking`, its lease), and
    the outcome in one transaction."""
    return record_revokes(ctx, [call_revoke(ctx, session)])[0]


@dataclass(frozen=True)
class RevokeOutcome:
    """What the provider said about one claimed revoke (not yet recorded)."""

    session_id: str
    error: str | None = None  # None: revoked and verified gone (or still held by another)
    note: str | None = None  # what the provider said about the change
    held_by: tuple[str, ...] = ()  # other sessions holding the same access: no provider call
    revoked_at: datetime | None = None  # when the provider answered the revoke, if known


def call_revoke(ctx: AppContext, session: AccessSession) -> RevokeOutcome:
    """The provider call for a claimed session, under the holder lock, once it is clear, under
    that lock, that no other session of the person holds the same access. Nothing is written:
    `record_revokes` records the outcome (the sweep records many in one transaction)."""
    not_before_its_end(session)
    try:
        with holder_lock(session) as locked:
            held_by = _other_holders(ctx, session, locked)
            if held_by:
                return RevokeOutcome(session.id, held_by=tuple(held_by))
            try:
                with metrics.REVOKE_SECONDS.time():
                    note = revoke_verified(provider_for(ctx, session.system_id), session)
            except (ProviderError, OperationError) as exc:
                return RevokeOutcome(session.id, error=short(exc))
    except SQLAlchemyError as exc:  # the lock or the check, before any provider call
        # Recorded as a failed attempt (retried with backoff, shown as failing), not left to
        # the lease: for example PostgreSQL refusing connections beyond max_connections.
        return RevokeOutcome(
            session.id, error=f"database: {short(getattr(exc, 'orig', None) or exc)}"
        )
    return RevokeOutcome(session.id, note=note)


def record_revokes(ctx: AppContext, outcomes: list[RevokeOutcome]) -> list[AccessSession]:
    """Record the outcomes of claimed revokes in one transaction (revoking → ended |
    revoke_failing), then tell people. A session no longer being revoked (someone else
    finished it) is left as it is. Returns the sessions, in the order of `outcomes`."""
    ids = sorted(o.session_id for o in outcomes)  # one lock order for every writer
    with transaction(ctx.db) as db:
        rows = {
            row.id: row
            for row in db.scalars(
                select(AccessSession)
                .where(AccessSession.id.in_(ids))
                .order_by(AccessSession.id)
                .with_for_update(of=AccessSession)
                .execution_options(populate_existing=True)
            )
        }
        missing = set(ids) - set(rows)
        if missing:
            raise NotFound(f"No session {sorted(missing)[0]} exists.")
        changed = []
        with inserts_together(db):
            for outcome in outcomes:
                session = rows[outcome.session_id]
                if session.state in REVOCABLE:
                    _record_revoke(db, ctx, session, outcome)
                    changed.append(session)
    for session in changed:
        if session.state == SessionState.ended:
            ctx.notify.session_ended(session)
            comment_on_ticket(ctx, session, TicketEvent.ended)
        else:
            ctx.notify.revoke_failed(session)
    return [rows[o.session_id] for o in outcomes]


def _record_revoke(
    db: Session, ctx: AppContext, session: AccessSession, outcome: RevokeOutcome
) -> None:
    now = clock.now()
    if outcome.error is None:
        session.state = SessionState.ended
        session.ended_at = outcome.revoked_at or now
        session.next_attempt_at = None
        session.last_error = None
        # Set before the first audit append, which flushes the row: one UPDATE, not two.
        reminders = ctx.policy.defaults.closeout_reminders
        session.closeout_state = CloseoutState.prompted
        session.reminders_sent = 0
        session.next_reminder_at = now + reminders[0] if reminders else None
        if outcome.held_by:
            audit.record(
                db,
                "revoke_skipped",
                audit.SYSTEM_ACTOR,
                session=session,
                still_held_by=list(outcome.held_by),
            )
        else:
            audit.record(
                db,
                "revoked",
                audit.SYSTEM_ACTOR,
                session=session,
                identity=session.identity,
                grant=session.grant_name,
                **provider_note(outcome.note),
                **_when_revoked(session, outcome.revoked_at),
            )
        audit.record(db, "closeout_prompted", audit.SYSTEM_ACTOR, session=session)
        return
    metrics.REVOKE_FAILURES.inc()
    session.state = SessionState.revoke_failing
    session.attempts += 1
    session.last_error = outcome.error
    settings = ctx.settings
    session.next_attempt_at = now + backoff(
        session.attempts, settings.revoke_retry_base_seconds, settings.revoke_retry_max_seconds
    )
    audit.record(
        db,
        "revoke_failed",
        audit.SYSTEM_ACTOR,
        session=session,
        error=outcome.error,
        attempt=session.attempts,
        next_attempt_at=session.next_attempt_at.isoformat(),
    )


def _when_revoked(session: AccessSession, revoked_at: datetime | None) -> dict[str, Any]:
    """Audit detail: when the provider answered the revoke, and by how much that was before
    the session's end when a burst started it early (EXPIRY_REVOKE_AHEAD_SECONDS)."""
    if revoked_at is None:
        return {}
    detail: dict[str, Any] = {"revoked_at": revoked_at.isoformat()}
    if session.expires_at is not None and revoked_at < session.expires_at:
        early = (session.expires_at - revoked_at).total_seconds()
        detail["before_expires_at_seconds"] = round(early, 3)
    return detail


def revoke_verified(provider: Provider, session: AccessSession) -> str | None:
    """Revoke, then ask the provider whether the access is really gone; returns the provider's
    note. Raises ProviderError when the revoke failed or did not take effect."""
    access = access_of(session)
    note = provider.revoke(access)
    verify_gone(provider, access)
    return note


def verify_gone(provider: Provider, access: AccessGrant) -> None:
    """After a revoke: ProviderError unless the provider's `check` says the access is gone."""
    try:
        present = provider.check(access)
    except ProviderError as exc:
        raise ProviderError(f"revoke could not be verified: {exc}") from None
    if present:
        raise ProviderError("revoke did not take effect: access still present")


def not_before_its_end(session: AccessSession, early: float = 0.0) -> None:
    """Wait, if need be, until a session ending because it expired is `early` seconds from its
    end: the sweep claims such sessions up to EXPIRY_LEAD_SECONDS before it, so that the
    provider can be called on time; before `early` (EXPIRY_REVOKE_AHEAD_SECONDS at most, the
    expiry burst's), never (the window is the requester's until it ends)."""
    if session.end_reason == EndReason.expired and session.expires_at is not None:
        wait = (session.expires_at - clock.now()).total_seconds() - early
        if 0 < wait <= LONGEST_LEAD_SECONDS:  # further: not claimed ahead (a row set by hand)
            time.sleep(wait)


#: The longest EXPIRY_LEAD_SECONDS allowed (app/config.py).
LONGEST_LEAD_SECONDS = 10.0


#: The sessions in a holding state for any of some identities on some systems (one statement
#: for a batch: `other_holders`); built once.
_HOLDERS = select(
    AccessSession.id, AccessSession.system_id, AccessSession.identity, AccessSession.grant_name
).where(
    AccessSession.system_id.in_(bindparam("systems", expanding=True)),
    AccessSession.identity.in_(bindparam("identities", expanding=True)),
    AccessSession.state.in_(HOLDING_STATES),
)


def other_holders(
    ctx: AppContext, sessions: list[AccessSession], locked: Connection | None
) -> dict[str, list[str]]:
    """`_other_holders` for a batch whose holder locks are held (`holder_locks`), in one
    statement per 500 sessions: by session id, the other sessions holding the same access."""
    keyed: dict[tuple[str, str | None, str], list[str]] = {}
    for session in sessions:
        keyed.setdefault((session.system_id, session.identity, session.grant_name), [])
    systems = sorted({s.system_id for s in sessions})
    identities = sorted({s.identity for s in sessions if s.identity is not None})
    for start in range(0, len(identities), 500):
        parameters = {"systems": systems, "identities": identities[start : start + 500]}
        if locked is not None:
            rows = locked.execute(_HOLDERS, parameters).all()
        else:
            with peeking(ctx.db) as connection:
                rows = connection.execute(_HOLDERS, parameters).all()
        for row_id, system_id, identity, grant_name in rows:
            holders = keyed.get((system_id, identity, grant_name))
            if holders is not None:
                holders.append(row_id)
    return {
        s.id: [other for other in keyed[(s.system_id, s.identity, s.grant_name)] if other != s.id]
        for s in sessions
    }


def _other_holders(ctx: AppContext, session: AccessSession, locked: Connection | None) -> list[str]:
    """Ids of the person's other sessions that hold (or are being given) the same access; read
    on the connection that holds the holder lock, when there is one."""
    if locked is not None:
        return sessions_of_same_access(locked, session, HOLDING_STATES)
    with peeking(ctx.db) as connection:
        return sessions_of_same_access(connection, session, HOLDING_STATES)
