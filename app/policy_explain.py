"""`prod-access policy explain`: what the bot would do for one person and one system (or one of
its roles), in plain lines: may they request, may they approve, how many approvals, the route
(approvers, staging, auto, on call, break-glass), the durations offered, the identity and the
grant.

Every answer comes from the questions the bot itself asks (app/operations/people.py,
`policy_route`, the Policy's own), so this says what the bot does, not a second reading of the
rules. User groups are expanded through Slack when a bot token is set; otherwise a group is
shown by its handle, "not expanded", and what depends on it is said to.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.context import AppContext, Directory
from app.delivery.notices import QuietNotifier
from app.models import Route
from app.operations import people
from app.policy import Policy, Role, System, scope_of, uses_email
from app.policy_review import route_of
from app.policy_values import format_duration, is_group

NOT_EXPANDED = "not expanded: no SLACK_BOT_TOKEN"


class ExplainDirectory:
    """The directory `explain` asks: Slack's when there is a token (`slack`), else none; an
    email given on the command line stands in for the person's Slack email."""

    def __init__(self, slack: Directory | None, email: str | None = None) -> None:
        self.slack = slack
        self.email = email

    def email_for(self, user_id: str) -> str | None:
        if self.email is not None:
            return self.email
        return self.slack.email_for(user_id) if self.slack else None

    def group_members(self, handle: str) -> set[str]:
        if self.slack is None:
            raise LookupError(NOT_EXPANDED)
        return self.slack.group_members(handle)

    def group_id(self, handle: str) -> str | None:
        return self.slack.group_id(handle) if self.slack else None


def explain_context(settings: Settings, policy: Policy, directory: Directory) -> AppContext:
    """What the bot's questions are asked with: the policy and a directory, nothing else."""
    return AppContext(
        settings=settings,
        policy=policy,
        providers={},
        db=sessionmaker(),  # never used: explain reads no database
        notify=QuietNotifier(),
        directory=directory,
    )


@dataclass(frozen=True)
class Explained:
    """What explain found: `lines` to print; `known` is False when a role asked for does not
    exist (the lines then say which do)."""

    lines: list[str]
    known: bool = True


def explain(ctx: AppContext, user_id: str, system_id: str, role_id: str | None) -> Explained:
    """The lines `policy explain` prints for this person and system (one role, or all)."""
    system = ctx.policy.system(system_id)
    if system is None:
        known = ", ".join(s.id for s in ctx.policy.systems)
        return Explained([f"no system {system_id!r} in the policy; it has: {known}"], False)
    roles = system.roles if role_id is None else [r for r in system.roles if r.id == role_id]
    if not roles:
        known = ", ".join(r.id for r in system.roles)
        return Explained([f"{system.id} has no role {role_id!r}; it has: {known}"], False)
    lines = [
        f"{user_id} and {system.id} ({system.name}), {system.tier}",
        _line("may request", _may_request(ctx, system, user_id)),
        _line("break-glass", _breakglass(ctx, system, user_id)),
        _line("identity", _identity(ctx, system, user_id)),
        _line("approver channel", ctx.policy.approver_channel(system)),
        _line("ticket", _ticket(ctx, system)),
        _line("request lapses", f"after {format_duration(ctx.policy.request_ttl(system))}"),
    ]
    for role in roles:
        lines += ["", f"role {role.id} ({scope_of(role.id, role)})"]
        lines += [f"  {line}" for line in _role(ctx, system, role, user_id)]
    return Explained(lines)


def _line(label: str, text: str) -> str:
    return f"{label + ':':<18}{text}"


def principals(ctx: AppContext, listed: list[str]) -> str:
    """People and groups as written, each group followed by its members (or why not)."""
    shown = []
    for principal in listed:
        if not is_group(principal):
            shown.append(principal)
            continue
        users, problems = people.members(ctx, [principal])
        if problems:
            why = problems[0].removeprefix(f"{principal}: ")
            shown.append(f"{principal} ({why})")
        else:
            shown.append(f"{principal} ({', '.join(sorted(users)) or 'no members'})")
    return ", ".join(shown)


def _unexpanded(ctx: AppContext, listed: list[str]) -> list[str]:
    return [p for p in listed if is_group(p) and people.members(ctx, [p])[1]]


def _yes_no(ctx: AppContext, allowed: bool, listed: list[str], what: str) -> str:
    """`yes`/`no` and why, for a person and the list that decides it."""
    if allowed:
        return f"yes ({what}: {principals(ctx, listed)})"
    open_groups = _unexpanded(ctx, listed)
    if open_groups:
        return (
            f"not by name; only as a member of {', '.join(open_groups)} ({what}: "
            f"{principals(ctx, listed)})"
        )
    return f"no ({what}: {principals(ctx, listed)})"


def _may_request(ctx: AppContext, system: System, user_id: str) -> str:
    allowed = people.may_request(ctx, system, user_id)
    if system.requesters is None:
        return "yes (no requesters list: everybody may)"
    return _yes_no(ctx, allowed, system.requesters, "requesters")


def _breakglass(ctx: AppContext, system: System, user_id: str) -> str:
    if system.breakglass is None:
        return f"{system.id} has none"
    glass = system.breakglass
    answer = _yes_no(
        ctx, people.may_break_glass(ctx, system, user_id), glass.users, "breakglass.users"
    )
    return (
        f"{answer}; granted at once for at most {format_duration(glass.max_duration)}, "
        f"reviewed by the approvers within {format_duration(glass.review_within)}"
    )


def _identity(ctx: AppContext, system: System, user_id: str) -> str:
    if user_id in ctx.policy.users:
        return f"{ctx.policy.users[user_id].identity} (override under users:)"
    directory = ctx.directory
    offline = isinstance(directory, ExplainDirectory) and directory.slack is None
    if uses_email(system) and offline and directory.email_for(user_id) is None:
        domains = ", ".join(ctx.policy.email_domains(system))
        return (
            f"{system.identity} of their Slack email, from {domains} (not looked up: no "
            "SLACK_BOT_TOKEN; --email EMAIL shows it for one)"
        )
    try:
        identity, email = people.identity_of(ctx, system, user_id)
    except ValueError as exc:  # no email, one outside email_domains, or Slack said no
        return f"none: {exc}"
    made_from = f" of {email}" if email else ""
    return f"{identity} ({system.identity}{made_from})"


def _ticket(ctx: AppContext, system: System) -> str:
    pattern = ctx.policy.ticket_pattern(system)
    return f"required, matching {pattern}" if pattern else "required (any text)"


def _role(ctx: AppContext, system: System, role: Role, user_id: str) -> list[str]:
    policy = ctx.policy
    approvers = policy.approvers_of(system, role.id)
    may_approve = people.may_approve(ctx, system, role.id, user_id)
    source = "role approvers" if role.approvers else "system approvers"
    rule = route_of(policy, system, role).rule
    needed = role.approvals_required
    limit = policy.max_duration(system, role)
    choices = ", ".join(format_duration(c) for c in policy.duration_choices(system, role))
    return [
        _line("may approve", _yes_no(ctx, may_approve, approvers, source)),
        _line("approvals", _approvals(rule, needed)),
        _line("route", _route(rule, user_id, needed)),
        _line("durations", f"{choices} (max {format_duration(limit)})"),
        _line("with extensions", f"at most {format_duration(policy.max_total(system, role))}"),
        _line("grant", f"{role.grant} through the {system.provider} provider"),
    ]


def _approvals(rule: tuple[Route, str] | None, needed: int) -> str:
    if rule is not None and rule[0] in (Route.staging, Route.auto):
        return "none needed (the route approves)"
    return f"{needed} (each by a different approver, never by the requester)"


def _route(rule: tuple[Route, str] | None, user_id: str, needed: int) -> str:
    if rule is None:
        return f"the approvers decide ({needed} approval(s))"
    kind, why = rule
    if kind == Route.oncall:
        return (
            f"on call: approved at once when {user_id} is on call in PagerDuty schedule {why} "
            "at the time of asking; otherwise the approvers decide"
        )
    if kind == Route.staging:
        return "staging: approved at once (tier: staging), still time-bound and audited"
    return f"auto: approved at once ({why}), still time-bound and audited"
