"""Who is who: the policy names people by Slack user id or by user group handle (`@sre-leads`);
here those lists become sets of user ids, through the `Directory` (Slack's usergroups API,
cached), and the questions "may this person approve / request / break glass?" are answered.

Fail closed: a group that can't be resolved (unknown handle, Slack down) counts as nobody, and
the refusal says so, so an outage never widens who may approve.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from app.context import AppContext
from app.models import AccessRequest, AccessSession
from app.operations.errors import NotAllowed
from app.policy import System, uses_email
from app.policy_values import is_group

log = structlog.get_logger(__name__)


def members(ctx: AppContext, principals: Iterable[str]) -> tuple[set[str], list[str]]:
    """(user ids, problems): the people the principals name, and why a group was skipped."""
    users: set[str] = set()
    problems: list[str] = []
    for principal in principals:
        if not is_group(principal):
            users.add(principal)
            continue
        try:
            users |= ctx.directory.group_members(principal.removeprefix("@"))
        except LookupError as exc:
            log.warning("user_group_unresolved", group=principal, error=str(exc))
            problems.append(f"{principal}: {exc}")
    return users, problems


def approvers(ctx: AppContext, system: System, role_id: str | None = None) -> set[str]:
    return members(ctx, ctx.policy.approvers_of(system, role_id))[0]


def is_among(ctx: AppContext, principals: Iterable[str], user_id: str) -> bool:
    """Is the person named, directly or through a user group? (A direct name asks no one.)"""
    principals = list(principals)
    if user_id in principals:
        return True
    return user_id in members(ctx, (p for p in principals if is_group(p)))[0]


def may_approve(ctx: AppContext, system: System, role_id: str | None, user_id: str) -> bool:
    return is_among(ctx, ctx.policy.approvers_of(system, role_id), user_id)


def may_request(ctx: AppContext, system: System, user_id: str) -> bool:
    return system.requesters is None or is_among(ctx, system.requesters, user_id)


def may_break_glass(ctx: AppContext, system: System, user_id: str) -> bool:
    return system.breakglass is not None and is_among(ctx, system.breakglass.users, user_id)


def identity_of(ctx: AppContext, system: System, user_id: str) -> tuple[str, str | None]:
    """(identity, email): who the person is at the system's provider, by the policy now. Asks
    the directory for the email only when the identity is made from it. ValueError says why
    no identity can be given (no email, an email outside the system's email_domains, Slack
    could not be asked)."""
    email = None
    override = ctx.policy.users.get(user_id)
    if uses_email(system) and (override is None or override.identity is None):
        email = ctx.directory.email_for(user_id)
    return ctx.policy.identity_for(system, user_id, email), email


def check_still_requester(ctx: AppContext, row: AccessRequest | AccessSession) -> None:
    """Is the person who asked still allowed to request this system, by the policy in force
    now (its `requesters`)? Asked again at every approval and extension, since the policy may
    have changed since the request was made."""
    system = ctx.policy.system(row.system_id)
    if system is None:
        raise NotAllowed(f"System {row.system_id} is no longer in the policy.")
    if not may_request(ctx, system, row.requester_id):
        who = mention(row.requester_id)
        raise NotAllowed(
            f"{who} is no longer on the list of people who may request "
            f"{system.id} (the policy changed), so this can't go ahead.",
            mentions=[who],
        )


def requestable(ctx: AppContext, user_id: str) -> list[System]:
    """The systems this person may ask for (the modal and help show only these)."""
    return [system for system in ctx.policy.systems if may_request(ctx, system, user_id)]


def mention(user_id: str) -> str:
    """A person as a Slack mention (a refusal that names them lists it in its `mentions`)."""
    return f"<@{user_id}>"


def mention_list(ctx: AppContext, principals: Iterable[str]) -> list[str]:
    """Principals as Slack mentions: <@U…> for people, <!subteam^S…> for a group whose id
    the directory knows, else its handle as text (the policy allows no &, < or > in one)."""
    parts = []
    for principal in principals:
        if is_group(principal):
            group_id = ctx.directory.group_id(principal.removeprefix("@"))
            parts.append(f"<!subteam^{group_id}>" if group_id else principal)
        else:
            parts.append(mention(principal))
    return parts


def mentions(ctx: AppContext, principals: Iterable[str]) -> str:
    """`mention_list`, as one mrkdwn line."""
    return ", ".join(mention_list(ctx, principals))
