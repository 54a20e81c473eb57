"""The expiry sweep: revoke every session whose window has ended, retry failing revokes, and
finish intents (`granting` / `revoking`) that a crash left behind. Idempotent: run it as often
as you like; it calls the same operations as the "End access now" button.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, AccessSession, EndReason, RequestState, SessionState
from app.operations.end_session import end_session, revoke_session
from app.operations.errors import OperationError
from app.operations.grant_session import grant_session

log = structlog.get_logger(__name__)
BATCH = 500


@dataclass
class SweepResult:
    expired: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)


def _due(ctx: AppContext, state: SessionState, column: object) -> list[str]:
    with transaction(ctx.db) as db:
        return list(
            db.scalars(
                select(AccessSession.id)
                .where(AccessSession.state == state, column <= clock.now())  # type: ignore[operator]
                .order_by(column)  # type: ignore[arg-type]
                .limit(BATCH)
            )
        )


def expire_due_sessions(ctx: AppContext) -> SweepResult:
    """One sweep. Provider calls for different sessions run side by side (SWEEP_WORKERS), so a
    thousand sessions expiring in the same second are revoked within about a second, not one
    after another; calls for the same person and grant still queue (holder_lock)."""
    result = SweepResult()
    result.expired = _due(ctx, SessionState.active, AccessSession.expires_at)
    for state in (SessionState.revoke_failing, SessionState.revoking):
        result.retried += _due(ctx, state, AccessSession.next_attempt_at)
    result.resumed = _due(ctx, SessionState.granting, AccessSession.next_attempt_at)
    work = [
        *((end_session, ctx, sid, EndReason.expired, audit.SYSTEM_ACTOR) for sid in result.expired),
        *((revoke_session, ctx, sid) for sid in result.retried),
        *((grant_session, ctx, sid) for sid in result.resumed),
    ]
    if len(work) <= 1:
        for job in work:
            _safely(*job)
    else:
        with ThreadPoolExecutor(
            max_workers=min(ctx.settings.sweep_workers, len(work)), thread_name_prefix="sweep"
        ) as pool:
            list(pool.map(lambda job: _safely(*job), work))
    return result


def resume_interrupted(ctx: AppContext) -> SweepResult:
    """At start: intents this process left when it died are not leased by anyone alive."""
    with transaction(ctx.db) as db:
        rows = db.scalars(
            select(AccessSession).where(
                AccessSession.state.in_((SessionState.granting, SessionState.revoking))
            )
        ).all()
        for row in rows:
            row.next_attempt_at = clock.now()
    return expire_due_sessions(ctx)


def announce_unposted_requests(ctx: AppContext) -> list[str]:
    """At start: pending requests whose card was never posted (the process stopped between
    storing the request and posting it) are posted now."""
    with transaction(ctx.db) as db:
        requests = db.scalars(
            select(AccessRequest).where(
                AccessRequest.state == RequestState.pending, AccessRequest.card_ts.is_(None)
            )
        ).all()
    for request in requests:
        ctx.notify.request_created(request)
    return [r.id for r in requests]


def _safely(fn: object, *args: object) -> None:
    """One bad session must not stop the sweep for the others; the error is logged."""
    try:
        fn(*args)  # type: ignore[operator]
    except OperationError as exc:
        log.info("sweep_skipped", session_id=args[1], reason=str(exc))
    except Exception:
        log.exception("sweep_failed", session_id=args[1])
