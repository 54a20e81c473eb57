"""Timers for requests: lapse the ones nobody decided within `request_ttl` (and extensions of
sessions that have ended meanwhile), and escalate break-glass accesses nobody has reviewed.
Both re-check under a row lock, so several replicas running them at once act once.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import or_, select

from app import clock
from app.context import AppContext
from app.db import reading
from app.jobs.safely import safely
from app.models import AccessRequest, AccessSession, RequestKind, RequestState, ReviewState
from app.models import SessionState as S
from app.operations.decide_request import lapse_request
from app.operations.review_breakglass import escalate_breakglass

BATCH = 500


def lapse_stale_requests(ctx: AppContext) -> list[str]:
    now = clock.now()
    with reading(ctx.db) as db:
        overdue = list(
            db.scalars(
                select(AccessRequest.id)
                .where(AccessRequest.state == RequestState.pending, AccessRequest.decide_by <= now)
                .limit(BATCH)
            )
        )
        orphaned = list(
            db.scalars(
                select(AccessRequest.id)
                .join(AccessSession, AccessSession.id == AccessRequest.extends_session_id)
                .where(
                    AccessRequest.state == RequestState.pending,
                    AccessRequest.kind == RequestKind.extension,
                    or_(AccessSession.state != S.active, AccessSession.expires_at <= now),
                )
                .limit(BATCH)
            )
        )
    lapsed = []
    for request_id in overdue:
        if _lapse(ctx, request_id, "nobody decided in time"):
            lapsed.append(request_id)
    for request_id in orphaned:
        if request_id not in overdue and _lapse(
            ctx, request_id, "the access ended before the extension was decided"
        ):
            lapsed.append(request_id)
    return lapsed


def escalate_unreviewed_breakglass(ctx: AppContext) -> list[str]:
    with reading(ctx.db) as db:
        due = list(
            db.scalars(
                select(AccessRequest.id)
                .where(
                    AccessRequest.review_state == ReviewState.due,
                    AccessRequest.next_escalation_at <= clock.now(),
                )
                .limit(BATCH)
            )
        )
    return [
        rid
        for rid in due
        if safely("breakglass_escalation", partial(escalate_breakglass, ctx, rid), request_id=rid)
    ]


def _lapse(ctx: AppContext, request_id: str, why: str) -> object:
    return safely(
        "request_lapse", partial(lapse_request, ctx, request_id, why), request_id=request_id
    )
