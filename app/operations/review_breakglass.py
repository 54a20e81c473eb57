"""The retro-review of a break-glass access: an approver acknowledges it (fine) or flags it
(the access ends at once). Until someone does, `escalate_breakglass` reminds the approvers every
`review_within` (and posts to the escalation channel when the policy names one).

The reviewer is checked like an approver (never the person who broke the glass). Reviewing
twice is refused; the audit trail keeps who reviewed, when, and whether it was in time.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import select

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, AccessSession, EndReason, ReviewState
from app.operations import people
from app.operations.common import load_locked, read_row
from app.operations.decide_request import check_decider
from app.operations.end_session import end_session
from app.operations.errors import ConflictError


def review_breakglass(
    ctx: AppContext, request_id: str, reviewer_id: str, outcome: ReviewState
) -> AccessRequest:
    """due → acknowledged | flagged. Flagged ends the access now."""
    assert outcome in (ReviewState.acknowledged, ReviewState.flagged)
    check_decider(ctx, read_row(ctx, AccessRequest, request_id), reviewer_id, "review")
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        if request.review_state != ReviewState.due:
            who = [people.mention(request.reviewed_by)] if request.reviewed_by else []
            by = f" by {who[0]}" if who else ""
            state = request.review_state.value if request.review_state else "not break-glass"
            raise ConflictError(f"Request {request.id} is already {state}{by}.", mentions=who)
        now = clock.now()
        in_time = request.review_due_at is None or now <= request.review_due_at
        request.review_state, request.reviewed_by, request.reviewed_at = outcome, reviewer_id, now
        request.next_escalation_at = None
        session = db.scalars(
            select(AccessSession).where(AccessSession.request_id == request.id)
        ).first()
        audit.record(
            db,
            "breakglass_reviewed",
            reviewer_id,
            request=request,
            session=session,
            outcome=outcome.value,
            in_time=in_time,
            escalations=request.escalations,
        )
        session_id = session.id if session is not None else None
    ctx.notify.breakglass_reviewed(request)
    if outcome == ReviewState.flagged and session_id is not None:
        # Already ended or never granted: nothing to take away. Still granting: grant_session
        # sees the flag when the grant lands and ends it then.
        with contextlib.suppress(ConflictError):
            end_session(ctx, session_id, EndReason.flagged, reviewer_id)
    return request


def escalate_breakglass(ctx: AppContext, request_id: str) -> AccessRequest | None:
    """One escalation of an unreviewed break-glass access, and the next one scheduled (every
    review_within, until someone reviews). None if not due (reviewed, or another worker did)."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        due = request.next_escalation_at
        if request.review_state != ReviewState.due or due is None or due > clock.now():
            return None
        system = ctx.policy.system(request.system_id)
        every = system.breakglass.review_within if system and system.breakglass else None
        request.escalations += 1
        request.next_escalation_at = clock.now() + every if every else None
        audit.record(
            db,
            "breakglass_escalated",
            audit.SYSTEM_ACTOR,
            request=request,
            escalation=request.escalations,
        )
    ctx.notify.breakglass_escalated(request)
    return request
