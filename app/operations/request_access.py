"""Create an access request from the modal or the quick form: validate, store, audit.

Validation is one function for both paths, answering per field in the user's words, so the modal
shows inline errors and the quick form says exactly what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, RequestState
from app.operations.common import new_id
from app.operations.errors import InvalidRequest
from app.policy import Policy, format_duration, parse_duration

REASON_MAX = 2000
TICKET_MAX = 100


@dataclass(frozen=True)
class RequestForm:
    system: str
    role: str
    duration: str
    ticket: str
    reason: str


@dataclass(frozen=True)
class ValidRequest:
    system: str
    role: str
    duration: timedelta
    ticket: str
    reason: str


def validate(policy: Policy, form: RequestForm) -> ValidRequest:
    """The request as the policy allows it, or InvalidRequest with one message per bad field."""
    errors: dict[str, str] = {}
    system = policy.system(form.system.strip())
    role = system.role(form.role.strip()) if system else None
    if system is None:
        known = ", ".join(s.id for s in policy.systems)
        errors["system"] = f"Unknown system '{form.system}'. Known systems: {known}."
    elif role is None:
        known = ", ".join(r.id for r in system.roles)
        errors["role"] = f"Unknown access '{form.role}' for {system.id}. Choose one of: {known}."
    duration: timedelta | None = None
    try:
        duration = parse_duration(form.duration)
    except ValueError as exc:
        errors["duration"] = str(exc)[0].upper() + str(exc)[1:] + "."
    if duration is not None and system is not None and role is not None:
        limit = policy.max_duration(system, role)
        if duration > limit:
            errors["duration"] = (
                f"{format_duration(duration)} is longer than the {format_duration(limit)} "
                f"allowed for {system.id} {role.id}."
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
    return ValidRequest(system.id, role.id, duration, ticket, reason)


def create_request(ctx: AppContext, requester_id: str, form: RequestForm) -> AccessRequest:
    """Validate, store and audit a pending request (InvalidRequest says what is wrong).
    Posting it is the caller's next step (Slack: after the ack)."""
    valid = validate(ctx.policy, form)
    system = ctx.policy.system(valid.system)
    assert system is not None
    with transaction(ctx.db) as db:
        request = AccessRequest(
            id=new_id("R"),
            requester_id=requester_id,
            system_id=valid.system,
            role_id=valid.role,
            duration_seconds=int(valid.duration.total_seconds()),
            ticket=valid.ticket,
            reason=valid.reason,
            state=RequestState.pending,
            created_at=clock.now(),
            card_channel=ctx.policy.approver_channel(system),
        )
        db.add(request)
        audit.record(
            db,
            "requested",
            requester_id,
            request=request,
            duration=format_duration(valid.duration),
            reason=valid.reason,
        )
    return request


def attach_card(ctx: AppContext, request_id: str, channel: str, ts: str) -> None:
    """Remember where the approval card was posted, so later steps update it and thread under it."""
    with transaction(ctx.db) as db:
        request = db.get(AccessRequest, request_id, with_for_update=True)
        if request is not None:
            request.card_channel, request.card_ts = channel, ts
