"""Create an access request (from the modal or the quick form) or an extension of an active
session: validate, store, audit; then `submit_request` decides what the policy decides on its own
(break-glass, staging tier, a role's auto_approve, the requester on call), announces the request
and grants what was approved.

Validation is one function for both paths, answering per field in the user's words, so the modal
shows inline errors and the quick form says exactly what is wrong. Who may ask for a system
(`requesters`) and who may break glass are checked here, not only hidden in the modal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import audit, clock
from app.context import AppContext
from app.db import insert_row, transaction
from app.models import (
    AccessRequest,
    AccessSession,
    RequestKind,
    RequestState,
    Route,
    SessionState,
)
from app.operations import people, tickets
from app.operations.common import load_locked, new_id, read_row
from app.operations.decide_request import Decision, approve_by_policy, grant_approved
from app.operations.errors import ConflictError, InvalidRequest, NotAllowed
from app.operations.oncall_approval import on_call
from app.operations.queries import with_approvals
from app.policy import Policy, System
from app.policy_oncall import describe_oncall
from app.policy_values import format_duration, parse_duration

REASON_MAX = 2000
TICKET_MAX = 100


@dataclass(frozen=True)
class RequestForm:
    system: str
    role: str
    duration: str
    ticket: str
    reason: str
    breakglass: bool = False


@dataclass(frozen=True)
class ValidRequest:
    system: str
    role: str
    duration: timedelta
    ticket: str
    reason: str
    breakglass: bool = False


def validate(
    policy: Policy, form: RequestForm, visible: list[System] | None = None
) -> ValidRequest:
    """The request as the policy allows it, or InvalidRequest with one message per bad field.
    `visible`: the systems this person may ask for (all when None)."""
    errors: dict[str, str] = {}
    visible = policy.systems if visible is None else visible
    system = next((s for s in visible if s.id == form.system.strip()), None)
    role = system.role(form.role.strip()) if system else None
    if system is None:
        known = ", ".join(s.id for s in visible) or "none"
        errors["system"] = f"Unknown system '{form.system}'. Systems you can request: {known}."
    elif role is None:
        known = ", ".join(r.id for r in system.roles)
        errors["role"] = f"Unknown access '{form.role}' for {system.id}. Choose one of: {known}."
    duration: timedelta | None = None
    try:
        duration = parse_duration(form.duration)
    except ValueError as exc:
        errors["duration"] = str(exc)[0].upper() + str(exc)[1:] + "."
    if form.breakglass and system is not None and system.breakglass is None:
        errors["breakglass"] = (
            f"{system.id} has no break-glass; send the request without it for approval."
        )
    if duration is not None and system is not None and role is not None:
        limit = policy.max_duration(system, role)
        if form.breakglass and system.breakglass is not None:
            limit = min(limit, system.breakglass.max_duration)
        if duration > limit:
            kind = "break-glass " if form.breakglass else ""
            errors["duration"] = (
                f"{format_duration(duration)} is longer than the {format_duration(limit)} "
                f"allowed for {kind}{system.id} {role.id}."
            )
    ticket = form.ticket.strip()
    if system is not None:
        problem = policy.check_ticket(system, ticket)
        if problem:
            errors["ticket"] = problem
    if len(ticket) > TICKET_MAX:
        errors["ticket"] = f"Ticket is too long (at most {TICKET_MAX} characters)."
    reason = form.reason.strip()
    if not reason:
        errors["reason"] = "Say what you need the access for."
    elif len(reason) > REASON_MAX:
        errors["reason"] = f"Reason is too long (at most {REASON_MAX} characters)."
    if errors:
        raise InvalidRequest(errors)
    assert system and role and duration
    return ValidRequest(system.id, role.id, duration, ticket, reason, form.breakglass)


def create_request(ctx: AppContext, requester_id: str, form: RequestForm) -> AccessRequest:
    """Validate, store and audit a pending request (InvalidRequest says what is wrong).
    `submit_request` is the caller's next step (Slack: after the ack)."""
    visible = people.requestable(ctx, requester_id)
    asked = ctx.policy.system(form.system.strip())
    if asked is not None and asked not in visible:
        approvers = people.mention_list(ctx, asked.approvers)
        raise InvalidRequest(
            {
                "system": f"You are not on the list of people who may request {asked.id}. "
                f"Ask one of its approvers ({', '.join(approvers)}) to add you."
            },
            mentions=approvers,
        )
    valid = validate(ctx.policy, form, visible)
    system = ctx.policy.system(valid.system)
    assert system is not None
    if valid.breakglass and not people.may_break_glass(ctx, system, requester_id):
        raise InvalidRequest(
            {
                "breakglass": f"You are not on the break-glass list for {system.id}. Send the "
                "request without break-glass; an approver will decide."
            }
        )
    role = system.role(valid.role)
    assert role is not None
    # Who the person will be at the provider is settled now, before any approver is asked,
    # and shown on the card: what the approvers approve is what the session gets.
    try:
        identity, email = people.identity_of(ctx, system, requester_id)
    except ValueError as exc:  # it may name the requester (no email is known for them)
        raise InvalidRequest(
            {"system": _sentence(str(exc))}, mentions=[people.mention(requester_id)]
        ) from None
    checked = tickets.check_ticket(ctx, system, requester_id, email, valid.ticket)
    now = clock.now()
    request = AccessRequest(
        id=new_id("R"),
        requester_id=requester_id,
        system_id=valid.system,
        role_id=valid.role,
        duration_seconds=int(valid.duration.total_seconds()),
        ticket=valid.ticket,
        reason=valid.reason,
        state=RequestState.pending,
        created_at=now,
        card_channel=ctx.policy.approver_channel(system),
        kind=RequestKind.access,
        route=Route.breakglass if valid.breakglass else Route.approvers,
        approvals_required=role.approvals_required,
        decide_by=now + ctx.policy.request_ttl(system),
        escalations=0,
        identity=identity,
        email=email,
        grant_name=role.grant,
        **checked.columns(),
    )

    def store(db: Session) -> AccessRequest:
        insert_row(db, request)
        audit.record(
            db,
            "requested",
            requester_id,
            request=request,
            duration=format_duration(valid.duration),
            reason=valid.reason,
            **audit.present(breakglass=valid.breakglass),
            **checked.audit(),
        )
        return request

    # committed with the other requests arriving now (group commit), before the caller acks
    return ctx.writes.write(store)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def extension_room(policy: Policy, session: AccessSession) -> timedelta:
    """How much longer this session may still be made (the role's max_total, extensions
    included, and no single extension longer than the role's max duration)."""
    system, role = policy.system_and_role(session.system_id, session.role_id)
    if system is None or role is None or session.expires_at is None:
        return timedelta(0)
    start = session.granted_at or session.created_at
    left = start + policy.max_total(system, role) - session.expires_at
    return max(timedelta(0), min(left, policy.max_duration(system, role)))


def check_extender(session: AccessSession, user_id: str) -> None:
    """Only the person who holds an active session may ask for more time on it."""
    if user_id != session.requester_id:
        raise NotAllowed("Only the person who has this access can ask to extend it.")
    if session.state != SessionState.active:
        raise ConflictError(f"Session {session.id} is {session.state.value}, not active.")


def request_extension(
    ctx: AppContext, session_id: str, user_id: str, duration: str, reason: str
) -> AccessRequest:
    """Ask for more time on an active session: a new request (kind `extension`) under the same
    approval rules; the session's end moves only when it is approved. The person must still
    be allowed to request the system by the policy in force now."""
    people.check_still_requester(ctx, read_row(ctx, AccessSession, session_id))
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        check_extender(session, user_id)
        waiting = db.scalars(
            select(AccessRequest.id).where(
                AccessRequest.extends_session_id == session.id,
                AccessRequest.state == RequestState.pending,
            )
        ).first()
        if waiting:
            raise ConflictError(f"An extension of {session.id} is already waiting: {waiting}.")
        system, role = ctx.policy.system_and_role(session.system_id, session.role_id)
        if system is None or role is None:
            raise NotAllowed(f"Access {session.role_id} is no longer in the policy.")
        errors: dict[str, str] = {}
        extra: timedelta | None = None
        try:
            extra = parse_duration(duration)
        except ValueError as exc:
            errors["duration"] = str(exc)[0].upper() + str(exc)[1:] + "."
        room = extension_room(ctx.policy, session)
        if extra is not None and extra > room:
            total = format_duration(ctx.policy.max_total(system, role))
            errors["duration"] = (
                f"At most {format_duration(room)} more is possible ({system.id} {role.id} "
                f"may last {total} in all, extensions included)."
                if room
                else f"{session.id} already has the longest time allowed ({total} in all)."
            )
        reason = reason.strip()
        if len(reason) > REASON_MAX:
            errors["reason"] = f"Reason is too long (at most {REASON_MAX} characters)."
        if errors:
            raise InvalidRequest(errors)
        assert extra is not None
        now = clock.now()
        request = AccessRequest(
            id=new_id("R"),
            requester_id=user_id,
            system_id=session.system_id,
            role_id=session.role_id,
            duration_seconds=int(extra.total_seconds()),
            ticket=session.request.ticket,
            reason=reason or "More time for the same task.",
            state=RequestState.pending,
            created_at=now,
            card_channel=ctx.policy.approver_channel(system),
            kind=RequestKind.extension,
            extends_session_id=session.id,
            route=Route.approvers,
            approvals_required=role.approvals_required,
            decide_by=min(now + ctx.policy.request_ttl(system), session.expires_at or now),
            escalations=0,
            identity=session.identity,
            email=session.email,
            grant_name=session.grant_name,
        )
        db.add(request)
        audit.record(
            db,
            "extension_requested",
            user_id,
            request=request,
            session=session,
            duration=format_duration(extra),
            reason=request.reason,
        )
    return request


@dataclass(frozen=True)
class PolicyRoute:
    """How a stored request goes on, decided once (from the policy alone: no database, no one
    called). `rule` is how the policy may approve it with no approver, as (route, the rule in
    words): break-glass, staging tier, auto_approve, or on call (the schedule, which
    `decide_by_policy` still has to find the requester on); None when the approvers decide.
    The listener tells the requester by it and queues the submission by it; `submit_request`
    follows the same value, so what the requester was told is what happens."""

    rule: tuple[Route, str] | None

    @property
    def waits_for_approvers(self) -> bool:
        """Only the approvers can approve: posting the card may wait for a quiet moment. Any
        other route is a grant the requester is waiting on (on call: if PagerDuty agrees)."""
        return self.rule is None


def policy_route(policy: Policy, request: AccessRequest) -> PolicyRoute:
    """Decide the request's route (see PolicyRoute)."""
    system, role = policy.system_and_role(request.system_id, request.role_id)
    if system is None or role is None:
        return PolicyRoute(None)
    if request.route == Route.breakglass:
        return PolicyRoute((Route.breakglass, "break-glass"))
    if system.tier == "staging":
        return PolicyRoute((Route.staging, "staging tier"))
    if role.auto_approve:
        return PolicyRoute((Route.auto, f"auto_approve for {role.id}"))
    if role.auto_approve_oncall:
        return PolicyRoute((Route.oncall, describe_oncall(role.auto_approve_oncall)))
    return PolicyRoute(None)


def submit_request(
    ctx: AppContext,
    request_id: str,
    route: PolicyRoute | None = None,
    step_up: dict[str, Any] | None = None,
) -> Decision | None:
    """After the request is stored: let the policy decide what it decides alone, post the card
    (it shows how the request was decided, or asks the approvers), grant what was approved.
    `route`: as the caller decided it (the listener, which told the requester by it); None only
    where nobody has yet (a request stored but never submitted, found at start). A break-glass
    whose policy asks for step-up waits, unposted, for the requester's login (`step_up`: its
    evidence, from app/operations/step_up.py)."""
    request = read_row(ctx, AccessRequest, request_id, with_approvals)
    if route is None:
        route = policy_route(ctx.policy, request)
    pending = request.state == RequestState.pending
    breakglass = route.rule is not None and route.rule[0] == Route.breakglass
    if pending and breakglass and not step_up and ctx.policy.breakglass_step_up(request.system_id):
        return None
    decision = decide_by_policy(ctx, request, route, step_up) if pending else None
    if decision is not None:
        request = read_row(ctx, AccessRequest, request_id, with_approvals)
    ctx.notify.request_created(request)
    grant_approved(ctx, decision)
    return decision


def decide_by_policy(
    ctx: AppContext,
    request: AccessRequest,
    route: PolicyRoute,
    step_up: dict[str, Any] | None = None,
) -> Decision | None:
    """Break-glass, staging tier, auto_approve, on call: approved now. Otherwise None (the
    approvers decide). PagerDuty unreachable means approvers decide, never a grant
    (`on_call`: app/operations/oncall_approval.py)."""
    if route.rule is None:
        return None
    kind, why = route.rule
    if kind == Route.oncall:
        if not on_call(ctx, request):
            return None
        why = f"on call ({why})"
    return approve_by_policy(ctx, request.id, kind, why, step_up)


def attach_card(ctx: AppContext, request_id: str, channel: str, ts: str) -> None:
    """Remember where the approval card was posted, so later steps update it and thread under it."""
    with transaction(ctx.db) as db:
        db.execute(
            update(AccessRequest)
            .where(AccessRequest.id == request_id)
            .values(card_channel=channel, card_ts=ts)
        )
