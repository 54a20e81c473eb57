"""The slash command's answers (ephemeral mrkdwn texts): the usage and help, what happens to a
request once it is stored, what is wrong with one, and the person's list of requests and
access (whose session lines the Home tab shows too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from app.models import AccessRequest, AccessSession, Route, SessionState
from app.policy import Policy, System
from app.policy_values import format_duration
from app.slack.blocks.dm import breakglass_granting
from app.slack.blocks.mrkdwn import code
from app.slack.text import escape, slack_date, with_mentions

# Escaped here, where it becomes mrkdwn: `<system>` must read as written, not as a link.
USAGE = escape(
    "*Usage*\n"
    "• `/prod-access` opens the request form\n"
    "• `/prod-access <system> <role> <duration> <ticket> <reason…>`, e.g. "
    "`/prod-access checkout-db write 30m PAY-184 restart payment worker`\n"
    "• `/prod-access --breakglass <system> <role> <duration> <incident> <reason…>` grants at "
    "once in an incident (if you are on the system's break-glass list); approvers review after\n"
    "• `/prod-access list` shows your pending requests and open access\n"
    "• `/prod-access done [session-id]` ends your access now\n"
    "• `/prod-access cancel <request-id>` withdraws a pending request\n"
    "• `/prod-access help` shows this"
)


def help_text(policy: Policy, systems: Sequence[System] | None = None) -> str:
    """Usage and the systems this person may request (all when `systems` is None)."""
    systems = policy.systems if systems is None else systems
    lines = [USAGE, "", "*Systems you can request*"]
    if not systems:
        lines.append("None: you are not on the requesters list of any system.")
    for system in systems:
        roles = ", ".join(
            f"{code(r.id)} (max {format_duration(policy.max_duration(system, r))})"
            for r in system.roles
        )
        tier = " _(staging: approved at once)_" if system.tier == "staging" else ""
        lines.append(f"• {code(system.id)} {escape(system.name)}{tier}: {roles}")
    return "\n".join(lines)


def accepted_text(request: AccessRequest, rule: tuple[Route, str] | None) -> str:
    """The quick form's answer once the request is stored: what happens next, by the rule the
    policy will apply (app.operations.request_access.policy_route), if any."""
    rid = code(request.id)
    if rule is None:
        return f"Request {rid} is on its way to the approvers."
    route, why = rule
    if route == Route.breakglass:
        return breakglass_granting(request)
    if route == Route.oncall:
        return (
            f"Request {rid}: granted at once if you are on call now ({escape(why)}), "
            "otherwise it is on its way to the approvers."
        )
    return f"Request {rid} is approved by the policy ({escape(why)}): granting now."


def problem_text(errors: dict[str, str], mentions: Sequence[str] = ()) -> str:
    """What is wrong with a request, one line per field (`mentions`: the people the messages
    name on purpose, see InvalidRequest), then the usage."""
    lines = ["*That request can't be sent:*"]
    lines += [f"• {with_mentions(message, mentions)}" for message in errors.values()]
    return "\n".join([*lines, "", USAGE])


def list_text(requests: list[AccessRequest], sessions: list[AccessSession]) -> str:
    """`/prod-access list`: my open access, then my requests waiting for approval."""
    if not requests and not sessions:
        return "You have no pending requests and no open access."
    lines: list[str] = []
    if sessions:
        lines.append("*Your access*")
        lines += [f"• {session_line(s)}" for s in sessions]
    if requests:
        lines.append("*Waiting for approval*")
        lines += [
            f"• `{r.id}` {escape(r.role_id)} on {escape(r.system_id)} for "
            f"{format_duration(timedelta(seconds=r.duration_seconds))}, "
            f"ticket {escape(r.ticket)}, asked {slack_date(r.created_at)}"
            for r in requests
        ]
    return "\n".join(lines)


def time_left(until: datetime, now: datetime) -> str:
    """'1h 5m left' (as of the moment the text was made; Slack shows no live countdown)."""
    seconds = max(0, int((until - now).total_seconds()))
    hours, minutes = divmod((seconds + 59) // 60, 60)
    if hours:
        return f"{hours}h {minutes}m left" if minutes else f"{hours}h left"
    return f"{minutes}m left" if minutes else "ending now"


def session_line(session: AccessSession, now: datetime | None = None) -> str:
    """One open access in a line: what, and its state (with the time left when `now` is given)."""
    head = f"`{session.id}` {escape(session.role_id)} on {escape(session.system_id)}"
    if session.state == SessionState.active and session.expires_at:
        left = f" ({time_left(session.expires_at, now)})" if now else ""
        return f"{head}, active until {slack_date(session.expires_at)}{left}"
    if session.state == SessionState.revoke_failing:
        return f"{head}, ending — revoke failing, retrying"
    return f"{head}, {session.state.value.replace('_', ' ')}"
