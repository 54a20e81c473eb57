"""The checks of `prod-access policy check` that go beyond what start-up refuses: what a reviewer
of a policy pull request easily misses. Each is run on the valid parts of the file
(app/policy_check.py `PolicyParts`) and says what it found as a `Finding`.

Errors (the policy cannot work as written, or leaks):
- duplicate system ids, and role ids within a system (with the line of the second one);
- a role whose distinct approvers can never reach `approvals_required` (a name listed twice
  counts once);
- a break-glass user who may not request the system (the bot refuses the request before it
  looks at break-glass), when the lists show it without asking Slack;
- a key under `users:` that is not shaped like a Slack user id (U or W, then upper-case letters
  and digits): that override never applies;
- an identity derived from an email without `email_domains` (start-up's own check);
- the provider: unknown, or its `config:` invalid (as start-up builds it, but without reading
  the environment); an unused `*_env` key (one the provider's config does not read, so the
  variable it names is never used), and a `*_env` value (or a command's `env:` entry) that is
  not a variable name: most likely the secret itself, pasted into the policy.
Warnings (allowed, worth a second look; errors with `--strict`):
- the same principal listed twice in one list;
- a requester who is one of too few approvers: without them, their own requests can never
  collect `approvals_required` (nobody approves their own request); a break-glass user whose
  right to request depends on user-group membership the check cannot see;
- a system's or role's `max_duration` above `defaults.max_duration`;
- a variable set in the `.env.example` beside the policy that no system names and that is not
  a prod-access setting (a leftover secret to remove).
Group members are never looked up here: a list with a user group is taken as it is written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from app.models import AccessRequest, Route
from app.operations.request_access import PolicyRoute, policy_route
from app.policy import Policy, Role, System, email_domains_problem
from app.policy_check import WARNING, Finding, Locator, PolicyParts
from app.policy_values import format_duration, is_group

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def review(at: Locator, parts: PolicyParts) -> list[Finding]:
    """Every reviewer finding for the file's valid parts."""
    findings = list(duplicate_ids(at, parts.raw))
    findings += user_override_ids(at, parts.raw)
    for index, system in parts.systems:
        where: list[Any] = ["systems", index]
        findings += repeated_principals(at, parts, index, system)
        findings += approvals(at, parts, index, system)
        findings += breakglass_requesters(at, where, system)
        findings += longer_than_defaults(at, parts, index, system)
        problem = email_domains_problem(parts.policy, system)
        if problem:
            findings.append(at.finding([*where, "identity"], problem))
    findings += provider_configs(at, parts.raw)
    findings += unused_env_example(parts)
    return findings


def route_of(policy: Policy, system: System, role: Role) -> PolicyRoute:
    """The route the bot decides for a (non break-glass) request of this role."""
    return policy_route(
        policy, AccessRequest(system_id=system.id, role_id=role.id, route=Route.approvers)
    )


def duplicate_ids(at: Locator, raw: dict[str, Any]) -> Iterator[Finding]:
    systems = raw.get("systems")
    for loc, what, value in _ids(systems if isinstance(systems, list) else [], ["systems"]):
        yield at.finding([*loc, "id"], f"duplicate {what} {value!r}")


def _ids(items: list[Any], loc: list[Any]) -> Iterator[tuple[list[Any], str, str]]:
    """(key path, what, id) of every id that repeats an earlier one, systems and roles."""
    what = "system id" if loc == ["systems"] else "role id"
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if "id" in item:
            if str(item["id"]) in seen:
                yield [*loc, index], what, str(item["id"])
            seen.add(str(item["id"]))
        roles = item.get("roles")
        if loc == ["systems"] and isinstance(roles, list):
            yield from _ids(roles, [*loc, index, "roles"])


def user_override_ids(at: Locator, raw: dict[str, Any]) -> Iterator[Finding]:
    users = raw.get("users")
    for user_id in users if isinstance(users, dict) else {}:
        if not SLACK_USER_ID.match(str(user_id)):
            yield at.finding(
                ["users", user_id],
                f"{user_id!r} is not a Slack user id (U or W, then upper-case letters and "
                "digits, e.g. U0123ABCD), so this identity override never applies",
            )


def repeated_principals(
    at: Locator, parts: PolicyParts, index: int, system: System
) -> Iterator[Finding]:
    where: list[Any] = ["systems", index]
    lists: list[tuple[list[Any], list[str] | None]] = [
        ([*where, "approvers"], system.approvers),
        ([*where, "requesters"], system.requesters),
        ([*where, "breakglass", "users"], system.breakglass.users if system.breakglass else None),
    ]
    lists += [([*parts.role_loc(index, r.id), "approvers"], r.approvers) for r in system.roles]
    for loc, principals in lists:
        for principal, count in Counter(principals or []).items():
            if count > 1:
                reason = f"{principal} is listed {count} times; it counts once"
                yield at.finding(loc, reason, WARNING)


def approvals(at: Locator, parts: PolicyParts, index: int, system: System) -> Iterator[Finding]:
    """Can the role's approvers ever give `approvals_required` approvals, and can each person
    who may request it (and approves it) get their own request approved?"""
    policy, where = parts.policy, ["systems", index]
    stuck: dict[tuple[tuple[Any, ...], str, int, int], list[str]] = {}
    for role in system.roles:
        loc = parts.role_loc(index, role.id)
        approvers = policy.approvers_of(system, role.id)
        if any(is_group(p) for p in approvers):
            continue  # how many people a group has is Slack's to say
        people = set(approvers)
        needed = role.approvals_required
        if len(people) < needed:
            reason = (
                f"{system.id} {role.id} needs {needed} approvals but has {len(people)} distinct "
                f"approver(s) ({', '.join(sorted(people))}): no request can ever be approved"
            )
            yield at.finding([*loc, "approvals_required"], reason)
            continue
        rule = route_of(policy, system, role).rule
        if rule is not None and rule[0] in (Route.staging, Route.auto):
            continue  # approved by the policy itself: nobody's approval is needed
        key = tuple([*loc, "approvers"] if role.approvers else [*where, "approvers"])
        for person in _requesters_among(system, people):
            if len(people - {person}) < needed:
                stuck.setdefault((key, person, len(people) - 1, needed), []).append(role.id)
    for (key, person, others, needed), roles in stuck.items():
        yield _self_approval(at, list(key), system, roles, person, others, needed)


def _requesters_among(system: System, people: set[str]) -> list[str]:
    """The approvers who may also request the system (all of them when everybody may)."""
    if system.requesters is None:
        return sorted(people)
    return sorted(people & set(system.requesters))


def _self_approval(
    at: Locator,
    key: list[Any],
    system: System,
    roles: list[str],
    person: str,
    others: int,
    needed: int,
) -> Finding:
    what = f"{system.id} {', '.join(roles)}"
    who = "everybody may request it" if system.requesters is None else "is a requester"
    if not others:
        told = f"{person} is the only approver of {what} and {who}"
    else:
        told = (
            f"{person} approves {what} and {who}; without them {others} approver(s) remain "
            f"for {needed} approvals"
        )
    reason = f"{told}: their own requests can never be approved (nobody approves their own)"
    return at.finding(key, reason, WARNING)


def breakglass_requesters(at: Locator, where: list[Any], system: System) -> Iterator[Finding]:
    if system.breakglass is None or system.requesters is None:
        return
    requesters = system.requesters
    groups = [p for p in requesters if is_group(p)]
    for index, principal in enumerate(system.breakglass.users):
        if principal in requesters:
            continue
        loc = [*where, "breakglass", "users", index]
        if is_group(principal) or groups:
            yield at.finding(
                loc,
                f"{principal} may break glass on {system.id} only as far as they may also "
                f"request it (requesters: {', '.join(requesters)}); that depends on user group "
                "members, which this check does not look up",
                WARNING,
            )
        else:
            yield at.finding(
                loc,
                f"{principal} may break glass on {system.id} but is not in its requesters: the "
                "bot refuses their request before it looks at break-glass (add them to "
                "requesters)",
            )


def longer_than_defaults(
    at: Locator, parts: PolicyParts, index: int, system: System
) -> Iterator[Finding]:
    limit = parts.policy.defaults.max_duration
    spans = [(["systems", index, "max_duration"], system.max_duration)]
    spans += [
        ([*parts.role_loc(index, r.id), "max_duration"], r.max_duration) for r in system.roles
    ]
    for loc, span in spans:
        if span is not None and span > limit:
            reason = (
                f"{format_duration(span)} is longer than defaults.max_duration "
                f"({format_duration(limit)})"
            )
            yield at.finding(loc, reason, WARNING)


def provider_configs(at: Locator, raw: dict[str, Any]) -> Iterator[Finding]:
    """Each system's provider and `config:` as start-up checks them, without the environment."""
    from app.providers.base import provider_class

    systems = raw.get("systems")
    for index, system in enumerate(systems if isinstance(systems, list) else []):
        if not isinstance(system, dict) or not isinstance(system.get("provider"), str):
            continue
        config = system.get("config") or {}
        where: list[Any] = ["systems", index]
        try:
            cls = provider_class(system["provider"])
        except KeyError as exc:
            yield at.finding([*where, "provider"], str(exc.args[0]))
            continue
        if not isinstance(config, dict):
            continue  # start-up's own validation says so
        fields = cls.Config.model_fields
        unused = [key for key in config if str(key).endswith("_env") and key not in fields]
        for key in unused:
            reads = [f for f in fields if f.endswith("_env")]
            yield at.finding(
                [*where, "config", key],
                f"the {system['provider']} provider reads no {key} "
                f"({'it reads ' + ', '.join(reads) if reads else 'it reads no variable'}), so "
                "the variable it names is never used",
            )
        try:
            cls.Config.model_validate(config)
        except ValidationError as exc:
            for error in exc.errors():
                if error["type"] == "extra_forbidden" and error["loc"][0] in unused:
                    continue
                key = ".".join(str(part) for part in error["loc"])
                yield at.finding([*where, "config", *error["loc"]], f"{error['msg']} ({key})")
        for loc, name in env_names(config):
            if not ENV_NAME.match(name):
                yield at.finding(
                    [*where, "config", *loc],
                    "must name an environment variable (e.g. CHECKOUT_DB_ADMIN_DSN), not hold "
                    "its value: a secret written here is read by everyone who reads the policy",
                )


def env_names(config: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """(key path in config, variable name) of every variable a provider config names: each
    `*_env` value, and each entry of a command's `env:` list."""
    for key, value in config.items():
        if str(key).endswith("_env") and isinstance(value, str):
            yield [key], value
        elif key == "env" and isinstance(value, list):
            yield from (([key, i], str(v)) for i, v in enumerate(value))


def unused_env_example(parts: PolicyParts) -> Iterator[Finding]:
    """Variables set in the `.env.example` beside the policy that nothing reads."""
    from app.config import Settings

    example = parts.path.parent / ".env.example"
    if not example.is_file():
        return
    named = {
        name
        for system in parts.raw.get("systems") or []
        if isinstance(system, dict) and isinstance(system.get("config"), dict)
        for _, name in env_names(system["config"])
    }
    settings = {name.upper() for name in Settings.model_fields}
    for number, line in enumerate(example.read_text(encoding="utf-8").splitlines(), 1):
        name = line.partition("=")[0].strip()
        if "=" in line and ENV_NAME.match(name) and name not in named | settings:
            yield Finding(
                str(example),
                number,
                name,
                f"set here, but no system in {parts.path.name} names it and it is not a "
                "prod-access setting (remove it, or name it in a system's config)",
                WARNING,
            )
