"""Decide a pending request: approve (N distinct approvers), deny (with an optional reason the
requester sees), cancel (the requester), lapse (nobody decided within request_ttl), or approve
without approvers where the policy says so (staging tier, a role's auto_approve, the requester
on call, break-glass).

The clicker is checked here, on the server, every time: only the approvers of the system's role
(people or members of a user group), never the requester, each approver counted once, and only
while the request is pending. A double-clicked Approve therefore counts once and grants once.
Approving an access request creates its session in `granting` (the grant comes next); approving
an extension moves the session's end. A role with `step_up` is approved only with the evidence
of a fresh login at the identity provider (app/operations/step_up.py), never by a click alone;
that evidence is written into the approval's audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import (
    AccessRequest,
    AccessSession,
    Approval,
    RequestKind,
    RequestState,
    ReviewState,
    Route,
    SessionState,
)
from app.operations import delegation, people
from app.operations.common import INTENT_LEASE, load_locked, new_id, read_row
from app.operations.errors import ConflictError, NotAllowed, StepUpRequired
from app.operations.grant_session import grant_session
from app.operations.queries import with_approvals
from app.policy_values import format_duration

DENY_REASON_MAX = 500


@dataclass(frozen=True)
class Decision:
    """What a decision did: the request as it stands now, and the session it created (access:
    to be granted next) or extended (extension); None while approvals are still missing."""

    request: AccessRequest
    session: AccessSession | None = None

    @property
    def approved(self) -> bool:
        return self.request.state == RequestState.approved


def may_decide(ctx: AppContext, request: AccessRequest, user_id: str) -> bool:
    """The rule of who decides a request: an approver of its system's role (by the policy in
    force now), or someone an approver of it handed their approvals to for now (a delegation,
    app/operations/delegation.py), never its requester. Asked outside any transaction: a user
    group may need a (cached) Slack call."""
    system = ctx.policy.system(request.system_id)
    return (
        system is not None
        and user_id != request.requester_id
        and (
            people.may_approve(ctx, system, request.role_id, user_id)
            or bool(delegation.acting_for(ctx, request, user_id))
        )
    )


def check_decider(ctx: AppContext, request: AccessRequest, user_id: str, verb: str) -> None:
    """May `user_id` approve or deny this request (`may_decide`)? If not, raises NotAllowed
    saying why: the system is gone, it is their own request, or who the approvers are."""
    if may_decide(ctx, request, user_id):
        return
    system = ctx.policy.system(request.system_id)
    if system is None:
        raise NotAllowed(f"System {request.system_id} is no longer in the policy.")
    if user_id == request.requester_id:
        raise NotAllowed(f"You can't {verb} your own request; another approver has to.")
    who = people.mention_list(ctx, ctx.policy.approvers_of(system, request.role_id))
    raise NotAllowed(
        f"Only the approvers of {system.name} {request.role_id} can {verb} this: {', '.join(who)}.",
        mentions=who,
    )


def check_may_deny(ctx: AppContext, request: AccessRequest, user_id: str) -> None:
    """Before the Deny modal opens: may this person deny, and is there still something to deny?"""
    check_decider(ctx, request, user_id, "deny")
    _check_pending(request)


def _check_pending(request: AccessRequest) -> None:
    if request.state != RequestState.pending:
        who = [people.mention(request.decided_by)] if request.decided_by else []
        by = f" by {who[0]}" if who else ""
        raise ConflictError(
            f"Request {request.id} was already {request.state.value}{by}.", mentions=who
        )


def approve_request(
    ctx: AppContext,
    request_id: str,
    approver_id: str,
    step_up: dict[str, Any] | None = None,
) -> Decision:
    """Count one approval; at the role's approvals_required the request is approved. The
    policy in force now decides, not the one in force when the request was made: the
    requester must still be allowed to ask, and only approvals from people who may approve
    now are counted. A role that needs step-up is refused (StepUpRequired) without `step_up`,
    the verified login's issuer, sub, amr and auth_time."""
    before = read_row(ctx, AccessRequest, request_id, with_approvals)
    check_decider(ctx, before, approver_id, "approve")
    people.check_still_requester(ctx, before)
    if step_up is None and needs_step_up(ctx, before):
        raise StepUpRequired(
            f"{before.system_id} {before.role_id} needs step-up: confirm your approval with "
            "a fresh login at the identity provider."
        )
    stepped = audit.present(step_up=step_up)
    # Asked outside the transaction (a user group may need Slack). Approvals recorded after
    # this read were checked a moment ago by their own click.
    stale = set(not_approvers_now(ctx, before))
    on_behalf_of = delegation.approving_for(ctx, before, approver_id)
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        _check_pending(request)
        if approver_id in request.approved_by:
            missing = request.approvals_required - len(_counted(request, stale))
            raise ConflictError(
                f"You already approved {request.id}; it needs {missing} more from other approvers."
            )
        delegation.check_counts_once(request, approver_id, on_behalf_of)
        now = clock.now()
        db.add(
            Approval(request=request, approver_id=approver_id, at=now, on_behalf_of=on_behalf_of)
        )
        db.flush()
        db.refresh(request, ["approvals"])
        counted = _counted(request, stale)
        count, required = len(counted), request.approvals_required
        noted = audit.present(not_counted=sorted(stale), on_behalf_of=on_behalf_of)
        if count < required:
            audit.record(
                db,
                "approval_recorded",
                approver_id,
                request=request,
                approvals=f"{count}/{required}",
                **noted,
                **stepped,
            )
            decision = Decision(request)
        else:
            decision = _approve(
                db,
                ctx,
                request,
                approver_id,
                Route.approvers,
                counted=counted,
                **noted,
                **stepped,
            )
    if decision.approved:
        ctx.notify.request_decided(decision.request)
    else:
        ctx.notify.approval_counted(decision.request, approver_id)
    return decision


def needs_step_up(ctx: AppContext, request: AccessRequest) -> bool:
    """Must an approver confirm an approval of this request with a fresh login (`step_up` of
    its role, system or the defaults, by the policy in force now)?"""
    system = ctx.policy.system(request.system_id)
    return system is not None and ctx.policy.step_up(system, request.role_id)


def not_approvers_now(ctx: AppContext, request: AccessRequest) -> list[str]:
    """Who approved this request but may not approve it by the policy (and, for an approval
    given for someone, the delegations) in force now."""
    return [
        a.approver_id for a in request.approvals if not delegation.still_counts(ctx, request, a)
    ]


def _counted(request: AccessRequest, stale: set[str]) -> list[str]:
    """The approvers who count, one per person counted (a delegate's counts as the delegator's)."""
    counted = {delegation.authority(a): a.approver_id for a in request.approvals}
    return [a for a in dict.fromkeys(counted.values()) if a not in stale]


def _approve(
    db: Session,
    ctx: AppContext,
    request: AccessRequest,
    actor: str,
    route: Route,
    note: str | None = None,
    counted: list[str] | None = None,
    **extra: Any,
) -> Decision:
    """pending → approved, inside the caller's transaction; creates or extends the session
    with what the card showed (the identity, the grant), or refuses if the policy has changed
    what the role grants since."""
    now = clock.now()
    request.state, request.decided_by, request.decided_at = RequestState.approved, actor, now
    request.route, request.decision_note = route, note
    if request.kind == RequestKind.extension:
        return Decision(request, _extend(db, ctx, request, actor))
    system, role = ctx.policy.system_and_role(request.system_id, request.role_id)
    if role is None:
        raise NotAllowed(f"Access {request.role_id} is no longer in the policy.")
    if request.grant_name is not None and request.grant_name != role.grant:
        raise NotAllowed(
            f"The policy changed: {request.system_id} {request.role_id} now grants "
            f"{role.grant}, not {request.grant_name} as this request says. Ask for it again."
        )
    session = AccessSession(
        id=new_id("S"),
        request=request,
        request_id=request.id,
        requester_id=request.requester_id,
        system_id=request.system_id,
        role_id=request.role_id,
        grant_name=role.grant,
        identity=request.identity,
        email=request.email,
        state=SessionState.granting,
        created_at=now,
        attempts=0,
        next_attempt_at=now + INTENT_LEASE,
    )
    db.add(session)
    detail: dict[str, Any]
    if route == Route.approvers:
        event, detail = "approved", {"approvers": counted or request.approved_by, **extra}
    elif route == Route.breakglass:
        assert system is not None and system.breakglass is not None  # checked at request time
        request.review_state = ReviewState.due
        request.review_due_at = now + system.breakglass.review_within
        request.next_escalation_at = request.review_due_at
        event = "breakglass_granted"
        detail = {"review_due_at": request.review_due_at.isoformat(), **extra}
    else:
        event, detail = "auto_approved", {"rule": note}
    audit.record(db, event, actor, request=request, session=session, route=route.value, **detail)
    return Decision(request, session)


def _extend(db: Session, ctx: AppContext, request: AccessRequest, actor: str) -> AccessSession:
    """Move the session's end by the extension's duration, capped by the role's max_total."""
    assert request.extends_session_id is not None
    session = load_locked(db, AccessSession, request.extends_session_id)
    if session.state != SessionState.active or session.expires_at is None:
        raise ConflictError(
            f"Session {session.id} is {session.state.value}; there is nothing to extend."
        )
    system, role = ctx.policy.system_and_role(session.system_id, session.role_id)
    if system is None or role is None:
        raise NotAllowed(f"Access {session.role_id} is no longer in the policy.")
    old_end = session.expires_at
    new_end = old_end + timedelta(seconds=request.duration_seconds)
    cap = (session.granted_at or session.created_at) + ctx.policy.max_total(system, role)
    capped = new_end > cap
    session.expires_at = min(new_end, cap)
    audit.record(
        db,
        "extension_approved",
        actor,
        request=request,
        session=session,
        old_expires_at=old_end.isoformat(),
        expires_at=session.expires_at.isoformat(),
        route=request.route.value,
        **audit.present(
            capped_at_max_total=capped and format_duration(ctx.policy.max_total(system, role))
        ),
    )
    return session


def approve_by_policy(
    ctx: AppContext,
    request_id: str,
    route: Route,
    rule: str,
    step_up: dict[str, Any] | None = None,
) -> Decision:
    """Approve without approvers because the policy says so (`rule` says which rule, for the
    card and the audit trail). A request already decided is left as it is. `step_up`: the
    login that confirmed a break-glass, for its audit event."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        if request.state != RequestState.pending:
            return Decision(request)
        actor = request.requester_id if route == Route.breakglass else audit.SYSTEM_ACTOR
        decision = _approve(db, ctx, request, actor, route, rule, **audit.present(step_up=step_up))
    ctx.notify.request_decided(decision.request)
    return decision


def deny_request(
    ctx: AppContext, request_id: str, approver_id: str, reason: str | None = None
) -> AccessRequest:
    before = read_row(ctx, AccessRequest, request_id, with_approvals)
    check_decider(ctx, before, approver_id, "deny")
    on_behalf_of = delegation.approving_for(ctx, before, approver_id)
    reason = (reason or "").strip()[:DENY_REASON_MAX] or None
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        _check_pending(request)
        request.state, request.decided_by, request.decided_at = (
            RequestState.denied,
            approver_id,
            clock.now(),
        )
        request.decision_note = reason
        noted = audit.present(reason=reason, on_behalf_of=on_behalf_of)
        audit.record(db, "denied", approver_id, request=request, **noted)
    ctx.notify.request_decided(request)
    return request


def cancel_request(ctx: AppContext, request_id: str, user_id: str) -> AccessRequest:
    """The requester withdraws a pending request."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        if user_id != request.requester_id:
            raise NotAllowed("Only the person who asked can cancel this request.")
        _check_pending(request)
        request.state, request.decided_by, request.decided_at = (
            RequestState.cancelled,
            user_id,
            clock.now(),
        )
        audit.record(db, "cancelled", user_id, request=request)
    ctx.notify.request_decided(request)
    return request


def lapse_request(ctx: AppContext, request_id: str, why: str) -> AccessRequest | None:
    """Nobody decided in time (or the session an extension was for has ended): the request
    lapses. None if it was decided meanwhile."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        if request.state != RequestState.pending:
            return None
        request.state, request.decided_at = RequestState.lapsed, clock.now()
        request.decision_note = why
        audit.record(db, "lapsed", audit.SYSTEM_ACTOR, request=request, why=why)
    ctx.notify.request_decided(request)
    return request


def approve_and_grant(
    ctx: AppContext, request_id: str, approver_id: str, step_up: dict[str, Any] | None = None
) -> Decision:
    """An approver's click (or its step-up confirmation, with `step_up`): count the approval
    (`approve_request`, which refuses with the reason) and, when it is the one that approves
    the request, grant the session at once, as `submit_request` does for what the policy
    approves alone. A second click is refused by the approval, so the session is granted once."""
    decision = approve_request(ctx, request_id, approver_id, step_up)
    grant_approved(ctx, decision)
    return decision


def grant_approved(ctx: AppContext, decision: Decision | None) -> None:
    """Grant the session a decision created (`granting`); an extension's session is already
    active, and a request still missing approvals has none."""
    session = decision.session if decision is not None else None
    if session is not None and session.state == SessionState.granting:
        grant_session(ctx, session.id)
