"""Busy approvers, as the policy has them: when the approvers of a pending request are reminded
(`remind_approvers_after`), when it is escalated and where to (`escalate_after`,
`escalation_channel`), and who is told of a request without deciding it (`notify`).

Rules it relies on:
- a role's key wins over its system's, a system's over `defaults` (as for `approvers`);
  `escalation_channel` is set in `defaults` or a system;
- `null` in `defaults` turns a timer off for the systems and roles that set none;
- the built-in `escalate_after` (30m) applies only where an escalation channel is known; an
  `escalate_after` written in the file with no channel to post to stops start-up, at its line.
  Posting the escalation to the approver channel instead would only repeat the reminder where
  it already went unanswered, so a lead on call at 3 a.m. would never hear of it;
- `notify` principals (people, `@groups`) are mentioned, never asked: only `approvers` decide.

Pure questions of the policy (app/policy.py holds the keys); nothing here talks to Slack.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.policy import Policy, System


def remind_approvers_after(policy: Policy, system: System, role_id: str) -> timedelta | None:
    """How long a request may wait before its approvers are mentioned again (None: never)."""
    role = system.role(role_id)
    for value in (role.remind_approvers_after if role else None, system.remind_approvers_after):
        if value is not None:
            return value
    return policy.defaults.remind_approvers_after


def escalation_channel(policy: Policy, system: System) -> str | None:
    """Where a request waiting too long is escalated (None: nowhere)."""
    return system.escalation_channel or policy.defaults.escalation_channel


def escalate_after(policy: Policy, system: System, role_id: str) -> timedelta | None:
    """How long a request may wait before it is escalated (None: never, also when there is no
    escalation channel to post to)."""
    if escalation_channel(policy, system) is None:
        return None
    role = system.role(role_id)
    for value in (role.escalate_after if role else None, system.escalate_after):
        if value is not None:
            return value
    return policy.defaults.escalate_after


def notify_of(policy: Policy, system: System, role_id: str) -> list[str]:
    """Who is told of a request (user ids, @group handles) without deciding it."""
    role = system.role(role_id)
    for principals in (role.notify if role else None, system.notify):
        if principals is not None:
            return list(principals)
    return list(policy.defaults.notify)


def escalation_problems(policy: Policy) -> Iterator[tuple[list[Any], str]]:
    """(key path, reason) for each `escalate_after` written in the file that has no
    escalation channel to post to; the path is the key that applies to the system or role."""
    defaults_set = (
        "escalate_after" in policy.defaults.model_fields_set
        and policy.defaults.escalate_after is not None
    )
    for index, system in enumerate(policy.systems):
        if escalation_channel(policy, system) is not None:
            continue
        where: list[Any] | None = None
        for place, role in enumerate(system.roles):
            if role.escalate_after is not None:
                where = ["systems", index, "roles", place, "escalate_after"]
                break
        if where is None and system.escalate_after is not None:
            where = ["systems", index, "escalate_after"]
        if where is None and defaults_set:
            where = ["defaults", "escalate_after"]
        if where is not None:
            yield (
                where,
                (
                    f"{system.id} escalates waiting requests but has no escalation_channel and "
                    "defaults has none; name the channel to escalate to (e.g. escalation_channel: "
                    "C0INCIDENTS) in the system or in defaults"
                ),
            )
