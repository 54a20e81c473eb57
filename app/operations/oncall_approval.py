"""May the requester's being on call approve the request with no approver? The check behind a
role's `auto_approve_oncall` (app/policy_oncall.py), asked by `decide_by_policy`.

Every condition the role names must hold, asked now:
- on call in one of `schedules` (PagerDuty `GET /oncalls?schedule_ids[]=…`, app/oncall.py);
- with `escalation_level_max`: at that escalation level or lower in one of those schedules (an
  entry without a level cannot tell, so it does not pass);
- with `incident_assigned`: the request's ticket was verified by its tracker when it was made,
  and the tracker, asked again now, says it is an incident and the requester (by Slack email,
  any case) is among its assignees.

Rules it relies on: anything that cannot be told (no PagerDuty token, PagerDuty or the tracker
unreachable, no email for the requester, a ticket no tracker handles or that was not verified)
means the approvers decide, never a grant: audited `oncall_check_failed` with the reason, as
before. A condition that is told and fails (level too high, not assigned to the incident) is
audited `oncall_not_approved` with the reason; not being on call at all is no event, as before.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import structlog

from app import audit
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest
from app.operations.common import load_locked
from app.policy_oncall import OnCallRule, OnCallSetting, oncall_rule

log = structlog.get_logger(__name__)


@runtime_checkable
class OnCallLevels(Protocol):
    """An on-call client that also tells escalation levels (app.oncall.PagerDuty)."""

    def escalation_level(self, schedule_id: str, email: str) -> int | None: ...


class _NotApproved(Exception):
    """A condition was told and does not hold."""


def on_call(ctx: AppContext, request: AccessRequest, schedule: OnCallSetting | None = None) -> bool:
    """Does the role's `auto_approve_oncall` (or `schedule`, given) approve the request now?
    See the module docstring; any failure says no, audited."""
    setting = schedule if schedule is not None else _setting_of(ctx, request)
    try:
        if setting is None:
            raise LookupError(f"{request.system_id}/{request.role_id} has no auto_approve_oncall")
        if ctx.oncall is None:
            raise LookupError("PAGERDUTY_TOKEN is not set")
        email = ctx.directory.email_for(request.requester_id)
        if not email:
            raise LookupError(f"no email is known for {request.requester_id}")
        rule = oncall_rule(setting)
        if not _on_call_within_level(ctx, rule, email):
            return False
        if rule.incident_assigned:
            _assigned_incident(ctx, request, email)
    except _NotApproved as refusal:
        _audit(ctx, request, "oncall_not_approved", reason=str(refusal))
        return False
    except Exception as exc:  # PagerDuty, a tracker or Slack down: approvers, never a grant
        log.warning("oncall_check_failed", request_id=request.id, error=str(exc))
        _audit(ctx, request, "oncall_check_failed", error=str(exc)[:300])
        return False
    return True


def _setting_of(ctx: AppContext, request: AccessRequest) -> OnCallSetting | None:
    _, role = ctx.policy.system_and_role(request.system_id, request.role_id)
    return role.auto_approve_oncall if role is not None else None


def _on_call_within_level(ctx: AppContext, rule: OnCallRule, email: str) -> bool:
    """On call in one of the schedules (False if in none); _NotApproved when only above the
    allowed escalation level."""
    assert ctx.oncall is not None
    if rule.escalation_level_max is None:
        return any(ctx.oncall.is_on_call(schedule, email) for schedule in rule.schedules)
    oncall = ctx.oncall
    if not isinstance(oncall, OnCallLevels):
        raise LookupError("the on-call client cannot tell escalation levels")
    levels: list[int | None] = []
    for schedule in rule.schedules:
        try:
            levels.append(oncall.escalation_level(schedule, email))
        except LookupError:
            continue  # not on call in this one
    if not levels:
        return False
    known = [level for level in levels if level is not None]
    if not known:
        raise LookupError("PagerDuty gave no escalation level for the requester")
    if min(known) > rule.escalation_level_max:
        raise _NotApproved(
            f"on call at escalation level {min(known)}, above the {rule.escalation_level_max} "
            "allowed"
        )
    return True


def _assigned_incident(ctx: AppContext, request: AccessRequest, email: str) -> None:
    """The request's ticket is an incident assigned to `email`, per its tracker now."""
    if not request.ticket_verified:
        reason = request.ticket_note or "no tracker handles it"
        raise LookupError(f"ticket {request.ticket} was not verified ({reason})")
    use = ctx.trackers.for_ticket(request.system_id, request.ticket) if ctx.trackers else None
    if use is None:
        raise LookupError(f"no tracker handles ticket {request.ticket} now")
    found = use.tracker.lookup(request.ticket)
    if not found.is_incident:
        raise _NotApproved(f"{found.key} is not an incident")
    if not found.assigned_to(email):
        assigned = found.assignee_names() or "nobody"
        raise _NotApproved(f"{found.key} is assigned to {assigned}, not to the requester")


def _audit(ctx: AppContext, request: AccessRequest, event: str, **detail: Any) -> None:
    with transaction(ctx.db) as db:
        row = load_locked(db, AccessRequest, request.id)
        audit.record(db, event, audit.SYSTEM_ACTOR, request=row, **detail)
