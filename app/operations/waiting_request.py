"""A request the approvers leave waiting: once `remind_approvers_after` has passed its approvers
are reminded (in the card's thread), once `escalate_after` has passed it is escalated (to the
escalation channel); the requester is told of both (app/policy_busy.py has the keys).

Each is sent at most once per request: it is recorded on the request (`approvers_reminded_at`,
`escalated_at`) under the row's lock, after checking that the request is still pending and the
step not yet taken, and audited (`approvers_reminded`, `request_escalated`) in the same
transaction; the notice goes after the commit. A second replica, or a run after a restart,
finds the step taken and sends nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app import audit, clock, policy_busy
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, RequestState
from app.operations import delegation, people
from app.operations.common import load_locked
from app.policy_values import format_duration


def reminder_due(ctx: AppContext, request: AccessRequest) -> datetime | None:
    """When this request's approvers are to be reminded (None: never, or done already)."""
    system = ctx.policy.system(request.system_id)
    after = (
        policy_busy.remind_approvers_after(ctx.policy, system, request.role_id) if system else None
    )
    if after is None or request.approvers_reminded_at is not None:
        return None
    return request.created_at + after


def escalation_due(ctx: AppContext, request: AccessRequest) -> datetime | None:
    """When this request is to be escalated (None: never, or done already)."""
    system = ctx.policy.system(request.system_id)
    after = policy_busy.escalate_after(ctx.policy, system, request.role_id) if system else None
    if after is None or request.escalated_at is not None:
        return None
    return request.created_at + after


def waited(request: AccessRequest, now: datetime) -> str:
    """How long the request has waited, to the minute ("32m", "1h5m")."""
    return format_duration(
        timedelta(minutes=max(1, (now - request.created_at) // timedelta(minutes=1)))
    )


def remind_approvers(ctx: AppContext, request_id: str) -> AccessRequest | None:
    """Remind the approvers of a pending request once it is due; None when it is not pending,
    not due, its card is not posted yet (the reminder goes in its thread), or another worker
    reminded them already."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        due = reminder_due(ctx, request)
        now = clock.now()
        if request.state != RequestState.pending or due is None or due > now or not request.card_ts:
            return None
        request.approvers_reminded_at = now
        audit.record(
            db,
            "approvers_reminded",
            audit.SYSTEM_ACTOR,
            request=request,
            waited=waited(request, now),
        )
    ctx.notify.approvers_reminded(request)
    return request


def escalate_request(ctx: AppContext, request_id: str) -> AccessRequest | None:
    """Escalate a pending request once it is due; None when it is not pending, not due, or
    another worker escalated it already."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        due = escalation_due(ctx, request)
        now = clock.now()
        system = ctx.policy.system(request.system_id)
        channel = policy_busy.escalation_channel(ctx.policy, system) if system else None
        if request.state != RequestState.pending or due is None or due > now or channel is None:
            return None
        request.escalated_at, request.escalated_to = now, channel
        audit.record(
            db,
            "request_escalated",
            audit.SYSTEM_ACTOR,
            request=request,
            channel=channel,
            waited=waited(request, now),
        )
    ctx.notify.request_escalated(request)
    return request


def awaited(ctx: AppContext, request: AccessRequest) -> list[tuple[str, str | None]]:
    """Whom a reminder names: each approver of the request who has not approved (nor been
    approved for), never the requester; a user group whose members can't be told is named as
    the group. With the person to mention: the approver, or the delegate standing in for them
    (then the approver is the second item, "lea for tom")."""
    system = ctx.policy.system(request.system_id)
    if system is None:
        return []
    done = {delegation.authority(a) for a in request.approvals} | {request.requester_id}
    # A delegate who has approved already (as themself) can't approve again for someone.
    away = {
        approver: delegate
        for approver, delegate in delegation.stand_ins(ctx, request).items()
        if delegate not in request.approved_by
    }
    named: dict[str, str | None] = {}
    for principal in ctx.policy.approvers_of(system, request.role_id):
        users, problems = people.members(ctx, [principal])
        if problems:
            named.setdefault(principal, None)
        for user in sorted(users - done):
            named.setdefault(away.get(user, user), user if user in away else None)
    return list(named.items())
