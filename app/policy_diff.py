"""`prod-access policy diff OLD NEW`: what a policy change changes for whom, as a reviewer reads
it in a pull request, grouped by system and role.

Values are compared as the bot uses them, not as written: a role's maximum duration, its
approvers, its route come from the Policy's own questions (so raising `defaults.max_duration`
shows on every role that inherits it). A change that gives someone more access than before (a
new system or role, more requesters or approvers, fewer approvals, a longer maximum, an
approval the policy now gives on its own, a wider scope, a new or changed identity override, a
different grant) is marked `(wider access)`: the lines to read twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.policy import Policy, Role, System, scope_of
from app.policy_review import route_of
from app.policy_values import format_duration

WIDER = "(wider access)"


@dataclass(frozen=True)
class Change:
    """One line of the diff: where (`` for the policy as a whole, `system`, `system role`),
    what changed, and whether it widens access."""

    where: str
    text: str
    wider: bool = False


def diff_policies(old: Policy, new: Policy) -> list[Change]:
    """Every change from `old` to `new`, the policy-wide ones first, then system by system."""
    changes = list(_defaults(old, new))
    changes += _overrides(old, new)
    new_ids = [s.id for s in new.systems]
    for system in old.systems:
        if system.id not in new_ids:
            roles = ", ".join(r.id for r in system.roles)
            changes.append(Change(system.id, f"system removed (roles {roles})"))
    for system in new.systems:
        before = old.system(system.id)
        if before is None:
            changes.append(Change(system.id, f"system added: {_summary(new, system)}", True))
            continue
        changes += _system(old, before, new, system)
    return changes


def render(changes: list[Change]) -> str:
    """The diff as text: a heading per system and role, one line per change."""
    if not changes:
        return "no changes in what the policy allows\n"
    wider = sum(1 for c in changes if c.wider)
    lines = [f"{len(changes)} change(s), {wider} giving wider access"]
    heading = None
    for change in changes:
        if change.where != heading:
            heading = change.where
            lines += ["", heading or "whole policy"]
        lines.append(f"  {change.text}" + (f"  {WIDER}" if change.wider else ""))
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "none" if value is None else str(value)


def _scalar(
    where: str, label: str, old: Any, new: Any, wider: Callable[[Any, Any], bool] | bool = False
) -> Iterator[Change]:
    if old != new:
        widens = wider(old, new) if callable(wider) else wider
        yield Change(where, f"{label}: {_show(old)} → {_show(new)}", widens)


def _list(
    where: str, label: str, old: list[str] | None, new: list[str] | None, *, wider: bool
) -> Iterator[Change]:
    """Items added and removed; None means "everybody" (a requesters list not given)."""
    if old is None or new is None:
        if old != new:
            everybody = "everybody (no list)"
            shown = [everybody if v is None else ", ".join(v) for v in (old, new)]
            yield Change(where, f"{label}: {shown[0]} → {shown[1]}", wider and new is None)
        return
    added = [v for v in new if v not in old]
    removed = [v for v in old if v not in new]
    if added:
        yield Change(where, f"{label}: + {', '.join(added)}", wider)
    if removed:
        yield Change(where, f"{label}: - {', '.join(removed)}")


def _longer(old: timedelta | None, new: timedelta | None) -> bool:
    return new is not None and (old is None or new > old)


def _fewer(old: int, new: int) -> bool:
    return bool(new < old)


def _defaults(old: Policy, new: Policy) -> Iterator[Change]:
    before, after = old.defaults.model_dump(), new.defaults.model_dump()
    for name, value in after.items():
        wider = _longer if name in ("max_duration", "retry_within") else False
        yield from _scalar("", f"defaults.{name}", before[name], value, wider)


def _overrides(old: Policy, new: Policy) -> Iterator[Change]:
    """`users:` identity overrides: who becomes whom at every provider."""
    for user, override in new.users.items():
        before = old.users.get(user)
        if before is None:
            yield Change("", f"identity override added: {user} → {override.identity}", True)
        elif before.identity != override.identity:
            text = f"identity override of {user}: {before.identity} → {override.identity}"
            yield Change("", text, True)
    for user, override in old.users.items():
        if user not in new.users:
            yield Change("", f"identity override removed: {user} (was {override.identity})")


def _summary(policy: Policy, system: System) -> str:
    roles = ", ".join(
        f"{r.id} (max {format_duration(policy.max_duration(system, r))})" for r in system.roles
    )
    return f"{system.name}, {system.provider}, roles {roles}; approvers {_show(system.approvers)}"


def _system(old: Policy, before: System, new: Policy, after: System) -> Iterator[Change]:
    where = after.id
    yield from _scalar(where, "name", before.name, after.name)
    yield from _scalar(where, "tier", before.tier, after.tier, lambda o, n: n == "staging")
    yield from _scalar(where, "provider", before.provider, after.provider, True)
    yield from _scalar(where, "config", before.config, after.config, True)
    yield from _scalar(where, "identity", before.identity, after.identity, True)
    yield from _scalar(where, "email_domains", old.email_domains(before), new.email_domains(after))
    yield from _list(where, "requesters", before.requesters, after.requesters, wider=True)
    yield from _list(where, "approvers", before.approvers, after.approvers, wider=True)
    yield from _scalar(
        where, "approver channel", old.approver_channel(before), new.approver_channel(after)
    )
    yield from _scalar(
        where,
        "ticket_pattern",
        old.ticket_pattern(before),
        new.ticket_pattern(after),
        lambda o, n: n is None,
    )
    yield from _scalar(
        where, "request_ttl", old.request_ttl(before), new.request_ttl(after), _longer
    )
    yield from _breakglass(where, before, after)
    for role in before.roles:
        if after.role(role.id) is None:
            yield Change(f"{where} {role.id}", "role removed")
    for role in after.roles:
        old_role = before.role(role.id)
        if old_role is None:
            yield Change(
                f"{where} {role.id}", f"role added: {_role_summary(new, after, role)}", True
            )
        else:
            yield from _role(f"{where} {role.id}", old, before, old_role, new, after, role)


def _breakglass(where: str, before: System, after: System) -> Iterator[Change]:
    old, new = before.breakglass, after.breakglass
    if old is None or new is None:
        if old is not new:
            users = _show(new.users) if new else ""
            text = f"break-glass added for {users}" if new else "break-glass removed"
            yield Change(where, text, new is not None)
        return
    yield from _list(where, "break-glass users", old.users, new.users, wider=True)
    yield from _scalar(
        where, "break-glass max_duration", old.max_duration, new.max_duration, _longer
    )
    yield from _scalar(
        where, "break-glass review_within", old.review_within, new.review_within, _longer
    )
    yield from _scalar(
        where, "break-glass escalation_channel", old.escalation_channel, new.escalation_channel
    )


def _route(policy: Policy, system: System, role: Role) -> str:
    rule = route_of(policy, system, role).rule
    return "approvers" if rule is None else f"{rule[0].value} ({rule[1]})"


def _role_summary(policy: Policy, system: System, role: Role) -> str:
    return (
        f"grant {role.grant}, {scope_of(role.id, role)}, max "
        f"{format_duration(policy.max_duration(system, role))}, {role.approvals_required} "
        f"approval(s) of {_show(policy.approvers_of(system, role.id))}, route "
        f"{_route(policy, system, role)}"
    )


def _role(
    where: str,
    old: Policy,
    old_system: System,
    before: Role,
    new: Policy,
    new_system: System,
    after: Role,
) -> Iterator[Change]:
    yield from _scalar(where, "grant", before.grant, after.grant, True)
    yield from _scalar(
        where,
        "scope",
        scope_of(before.id, before),
        scope_of(after.id, after),
        lambda o, n: n == "write",
    )
    yield from _scalar(
        where,
        "max_duration",
        old.max_duration(old_system, before),
        new.max_duration(new_system, after),
        _longer,
    )
    yield from _scalar(
        where,
        "max_total",
        old.max_total(old_system, before),
        new.max_total(new_system, after),
        _longer,
    )
    if before.approvers is not None or after.approvers is not None:
        yield from _list(
            where,
            "approvers",
            old.approvers_of(old_system, before.id),
            new.approvers_of(new_system, after.id),
            wider=True,
        )
    yield from _scalar(
        where, "approvals_required", before.approvals_required, after.approvals_required, _fewer
    )
    yield from _scalar(
        where,
        "route",
        _route(old, old_system, before),
        _route(new, new_system, after),
        lambda o, n: n != "approvers",
    )
