"""Reconciliation: ask the providers what is really granted and compare it with the sessions.

What it finds, and what it does about it:
- Standing access: a session ended (or whose grant failed) within the last
  RECONCILE_LOOKBACK_DAYS, yet its provider's `check` says the access is present, and no open
  session of the same person for the same grant on the same system explains it (overlapping
  sessions are legitimate, and a session still being granted or revoked, or whose grant's
  outcome is unknown, is the other jobs' business). It is audited `drift_detected`, revoked again
  through the provider (verified by `check`, like every revoke), audited `drift_revoked` or
  `drift_revoke_failed`, and announced in the approver channel.
- Access missing: an active session whose access `check` says is absent: audited
  `access_missing` and announced, once per session (the report lists it on every run).
- Check failed: the provider could not answer. Listed in the report and logged; nothing else.

Rules it relies on: one access (system, identity, grant) is checked once per run, as its most
recent ended session; every check and revoke runs under the same per-access lock as grants and
revokes, after re-reading the sessions, so a grant racing with the job is never taken away.
With several replicas on one PostgreSQL, one run happens at a time (an advisory lock held for
the run): a replica whose timer fires while another replica's run is going skips its turn,
so a finding is revoked and announced once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from app import audit, clock
from app.context import AppContext
from app.db import advisory_lock, engine_of, is_postgres, lock_key, transaction
from app.models import AccessSession, AuditEvent, SessionState
from app.operations.common import access_of, holder_lock, provider_note
from app.operations.end_session import revoke_verified
from app.operations.queries import OPEN_SESSION_STATES, sessions_of_same_access
from app.providers.base import ProviderError
from app.text import short

log = structlog.get_logger(__name__)

#: Sessions that should hold nothing: access found for one of them (and no open session of the
#: same access) is standing access.
HOLDS_NOTHING = (SessionState.ended, SessionState.grant_failed)
STANDING_ACCESS = "standing_access"
ACCESS_MISSING = "access_missing"
CHECK_FAILED = "check_failed"


@dataclass(frozen=True)
class Finding:
    """One thing that did not match, as a row of `prod-access reconcile`'s table."""

    kind: str  # standing_access | access_missing | check_failed
    session_id: str
    system: str
    role: str
    identity: str
    grant: str
    outcome: str  # revoked | revoke_failed | reported | not_checked
    detail: str


@dataclass
class ReconcileReport:
    ended_checked: int = 0
    active_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: bool = False  # another replica was reconciling; nothing was checked

    @property
    def clean(self) -> bool:
        return not self.findings


def reconcile(ctx: AppContext) -> ReconcileReport:
    """One run over recently ended and active sessions (see the module docstring), or none
    (`skipped`) while another replica's run holds the lock."""
    engine = engine_of(ctx.db)
    if not is_postgres(engine):  # SQLite: one process, and the job never overlaps itself
        return _run(ctx)
    with advisory_lock(engine, lock_key("reconcile"), wait=False) as held:
        if held is None:
            log.info("reconcile_skipped", reason="another replica is reconciling")
            return ReconcileReport(skipped=True)
        return _run(ctx)


def _run(ctx: AppContext) -> ReconcileReport:
    report = ReconcileReport()
    for session in _latest_ended_per_access(ctx):
        report.ended_checked += 1
        _keep(report, _reconcile_ended(ctx, session))
    for session in _sessions(ctx, SessionState.active):
        report.active_checked += 1
        _keep(report, _reconcile_active(ctx, session))
    log.info(
        "reconciled",
        ended_checked=report.ended_checked,
        active_checked=report.active_checked,
        findings=[f"{f.kind}:{f.session_id}:{f.outcome}" for f in report.findings],
    )
    return report


def _keep(report: ReconcileReport, finding: Finding | None) -> None:
    if finding is not None:
        report.findings.append(finding)


def _sessions(ctx: AppContext, state: SessionState) -> list[AccessSession]:
    with transaction(ctx.db) as db:
        return list(
            db.scalars(
                select(AccessSession).where(AccessSession.state == state).order_by(AccessSession.id)
            )
        )


def _latest_ended_per_access(ctx: AppContext) -> list[AccessSession]:
    """Per access (system, identity, grant), its most recent session that should hold nothing:
    ended, or whose grant failed (a grant may land although its answer said otherwise)."""
    since = clock.now() - timedelta(days=ctx.settings.reconcile_lookback_days)
    when = func.coalesce(AccessSession.ended_at, AccessSession.created_at)
    with transaction(ctx.db) as db:
        ended = db.scalars(
            select(AccessSession)
            .where(AccessSession.state.in_(HOLDS_NOTHING), when >= since)
            .order_by(when.desc())
        ).all()
    latest: dict[tuple[str, str, str], AccessSession] = {}
    for session in ended:
        if session.identity:
            latest.setdefault(_access_key(session), session)
    return list(latest.values())


def _access_key(session: AccessSession) -> tuple[str, str, str]:
    return (session.system_id, session.identity or "", session.grant_name)


def _open_sessions(ctx: AppContext, session: AccessSession) -> list[str]:
    """Sessions that may hold this access right now, or are being granted or revoked."""
    with transaction(ctx.db) as db:
        return sessions_of_same_access(db, session, OPEN_SESSION_STATES)


def _finding(session: AccessSession, kind: str, outcome: str, detail: str) -> Finding:
    return Finding(
        kind=kind,
        session_id=session.id,
        system=session.system_id,
        role=session.role_id,
        identity=session.identity or "",
        grant=session.grant_name,
        outcome=outcome,
        detail=detail,
    )


def _record(ctx: AppContext, session: AccessSession, event: str, **detail: Any) -> None:
    with transaction(ctx.db) as db:
        row = db.get(AccessSession, session.id)
        assert row is not None  # sessions are never deleted
        audit.record(
            db,
            event,
            audit.SYSTEM_ACTOR,
            session=row,
            identity=session.identity,
            grant=session.grant_name,
            **detail,
        )


def _reconcile_ended(ctx: AppContext, session: AccessSession) -> Finding | None:
    provider = ctx.providers.get(session.system_id)
    if provider is None:
        log.info("reconcile_skipped", session_id=session.id, reason="system not in the policy")
        return None
    access = access_of(session)
    with holder_lock(session):
        if _open_sessions(ctx, session):
            return None
        try:
            present = provider.check(access)
        except ProviderError as exc:
            log.warning("reconcile_check_failed", session_id=session.id, error=short(exc))
            return _finding(session, CHECK_FAILED, "not_checked", short(exc))
        if not present:
            return None
        ended = session.ended_at.isoformat() if session.ended_at else None
        _record(ctx, session, "drift_detected", ended_at=ended, state=session.state.value)
        try:
            note = revoke_verified(provider, session)
        except ProviderError as exc:
            error = short(exc)
            _record(ctx, session, "drift_revoke_failed", error=error)
            outcome, done = "revoke_failed", f"revoking it again failed: {error}"
        else:
            _record(ctx, session, "drift_revoked", **provider_note(note))
            outcome, done = "revoked", "revoked it again"
    after = f"{session.id} ended ({ended})" if ended else f"the grant of {session.id} failed"
    detail = (
        f"{session.identity} still held {session.grant_name} on {session.system_id} after "
        f"{after}; {done}."
    )
    log.warning("standing_access", session_id=session.id, outcome=outcome, detail=detail)
    ctx.notify.drift_found(session, detail)
    return _finding(session, STANDING_ACCESS, outcome, detail)


def _reconcile_active(ctx: AppContext, session: AccessSession) -> Finding | None:
    provider = ctx.providers.get(session.system_id)
    if provider is None:
        return None
    with holder_lock(session):
        with transaction(ctx.db) as db:
            current = db.get(AccessSession, session.id)
            if current is None or current.state != SessionState.active:
                return None  # it is being revoked right now
        try:
            present = provider.check(access_of(session))
        except ProviderError as exc:
            log.warning("reconcile_check_failed", session_id=session.id, error=short(exc))
            return _finding(session, CHECK_FAILED, "not_checked", short(exc))
    if present:
        return None
    detail = (
        f"{session.identity} should hold {session.grant_name} on {session.system_id} "
        f"({session.id} is active), but the provider says the access is missing."
    )
    if not _already_reported(ctx, session):
        _record(ctx, session, ACCESS_MISSING)
        log.warning("access_missing", session_id=session.id)
        ctx.notify.drift_found(session, detail)
    return _finding(session, ACCESS_MISSING, "reported", detail)


def _already_reported(ctx: AppContext, session: AccessSession) -> bool:
    with transaction(ctx.db) as db:
        return (
            db.scalars(
                select(AuditEvent.id)
                .where(
                    AuditEvent.request_id == session.request_id,
                    AuditEvent.event == ACCESS_MISSING,
                )
                .limit(1)
            ).first()
            is not None
        )
