"""The access policy: policy.yml → validated pydantic models, and the pure questions asked of it.

A bad file stops start-up with `PolicyError`: the file, the line, the key path and the reason
(app/policy_lines.py finds the line).
Nothing here talks to Slack, the database or a provider.
The values it is made of (durations, ticket patterns, email domains, principals) are checked
in app/policy_values.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from string import Formatter
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from app.policy_busy import escalation_problems
from app.policy_lines import describe_error, key_path, line_of
from app.policy_oncall import OnCallSetting
from app.policy_values import (
    DURATION_CHOICES,
    IDENTITY_FIELDS,
    Duration,
    EmailDomains,
    Principal,
    TicketPattern,
    is_group,
    parse_duration,
    ticket_regex,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackerRule(_Strict):
    """A ticket tracker for tickets whose text matches `pattern` (RE2): app/trackers/. The
    system's rules are tried first, then the defaults'; the first that matches handles it."""

    type: str = Field(min_length=1)
    pattern: TicketPattern = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    require_open: bool = True  # a closed or resolved ticket is refused
    require_assignee_is_requester: bool = False  # the assignee's email = the requester's
    comment: bool | None = None  # unset: yes, where the tracker takes comments
    end_access_on_resolve: bool | None = None  # unset: yes for incident trackers


class Defaults(_Strict):
    approver_channel: str | None = None
    ticket_pattern: TicketPattern = r"^[A-Z][A-Z0-9]+-\d+$"
    default_duration: Duration = timedelta(hours=1)
    max_duration: Duration = timedelta(hours=2)
    closeout_reminders: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=24)]
    )
    request_ttl: Duration = timedelta(hours=1)  # undecided requests lapse after this
    email_domains: EmailDomains = None  # where an identity derived from an email may come from
    retry_within: Duration = timedelta(minutes=15)  # "Retry grant" only this long after approval
    # Step-up: an Approve counts only after a fresh OpenID Connect login (app/operations/step_up.py)
    step_up: bool = False
    step_up_max_age: Duration = timedelta(minutes=5)  # how fresh the login must be
    step_up_amr: list[str] = Field(default_factory=lambda: ["mfa", "hwk", "otp", "swk"])
    trackers: list[TrackerRule] = Field(default_factory=list)
    # Busy approvers (app/policy_busy.py): remind, escalate, tell others; null here turns off
    remind_approvers_after: Duration | None = timedelta(minutes=10)
    escalate_after: Duration | None = timedelta(minutes=30)  # needs an escalation_channel
    escalation_channel: str | None = None
    notify: list[Principal] = Field(default_factory=list)  # told of requests, never decide


class Breakglass(_Strict):
    """Self-granted access in an incident: granted at once, reviewed afterwards."""

    users: list[Principal] = Field(min_length=1)
    max_duration: Duration = timedelta(hours=2)
    review_within: Duration = timedelta(minutes=15)
    escalation_channel: str | None = None
    step_up: bool = False  # the person breaking the glass logs in with MFA first


class Role(_Strict):
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    grant: str = Field(min_length=1, max_length=200)
    max_duration: Duration | None = None
    description: str | None = None
    scope: Literal["read", "write"] | None = None  # unset: read if the id says so, else write
    approvers: list[Principal] | None = None  # unset: the system's approvers
    approvals_required: int = Field(default=1, ge=1, le=10)
    auto_approve: bool = False  # approved at once (meant for read-only checks)
    auto_approve_oncall: OnCallSetting | None = None  # PagerDuty schedule id, or app/policy_oncall
    max_total: Duration | None = None  # extensions included; unset: twice the max duration
    step_up: bool | None = None  # unset: the system's, else the defaults'
    remind_approvers_after: Duration | None = None  # unset: the system's, else the defaults'
    escalate_after: Duration | None = None  # unset: the system's, else the defaults'
    notify: list[Principal] | None = None  # unset: the system's, else the defaults'


def scope_of(role_id: str, role: Role | None = None) -> str:
    """`read` or `write`: the role's declared scope, else read-looking ids (read, ro, view…)
    are read and everything else counts as write (the cautious side for a review)."""
    if role is not None and role.scope:
        return role.scope
    return "read" if re.match(r"^(read|ro\b|readonly|view)", role_id, re.I) else "write"


class System(_Strict):
    id: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=75)
    provider: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    identity: str = "{email_local}"
    tier: Literal["production", "staging"] = "production"  # staging: approved at once
    approvers: list[Principal] = Field(min_length=1)
    requesters: list[Principal] | None = None  # unset: everybody may ask
    approver_channel: str | None = None
    ticket_pattern: TicketPattern = None
    max_duration: Duration | None = None
    request_ttl: Duration | None = None
    breakglass: Breakglass | None = None
    email_domains: EmailDomains = None  # unset: the defaults' list
    retry_within: Duration | None = None
    step_up: bool | None = None  # unset: the defaults'
    trackers: list[TrackerRule] = Field(default_factory=list)  # tried before the defaults'
    remind_approvers_after: Duration | None = None  # unset: the defaults'
    escalate_after: Duration | None = None  # unset: the defaults'
    escalation_channel: str | None = None  # unset: the defaults'
    notify: list[Principal] | None = None  # unset: the defaults'
    roles: list[Role] = Field(min_length=1)

    @field_validator("identity")
    @classmethod
    def _known_fields(cls, identity: str) -> str:
        fields = {name for _, name, _, _ in Formatter().parse(identity) if name is not None}
        unknown = fields - IDENTITY_FIELDS
        if unknown:
            raise ValueError(
                f"identity template uses {sorted(unknown)}; allowed: "
                + ", ".join("{" + f + "}" for f in sorted(IDENTITY_FIELDS))
            )
        return identity

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[Role], info: ValidationInfo) -> list[Role]:
        _unique((role.id for role in roles), "role id")
        for role in roles:
            approvers = role.approvers or info.data.get("approvers") or []
            if not any(is_group(a) for a in approvers) and len(approvers) < role.approvals_required:
                raise ValueError(
                    f"role {role.id!r} needs {role.approvals_required} approvals but only "
                    f"{len(approvers)} approver(s) are listed"
                )
        return roles

    def role(self, role_id: str) -> Role | None:
        return next((role for role in self.roles if role.id == role_id), None)


class UserOverride(_Strict):
    identity: str | None = Field(default=None, min_length=1)
    oidc_subject: str | None = Field(default=None, min_length=1)  # the ID token's `sub` (step-up)


class Policy(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    systems: list[System] = Field(min_length=1)
    users: dict[str, UserOverride] = Field(default_factory=dict)
    _path: Path | None = PrivateAttr(default=None)
    _root: yaml.Node | None = PrivateAttr(default=None)

    def locate(self, loc: list[Any]) -> str:
        """`file:line` of a key path in the file this policy came from (for start-up errors)."""
        return f"{self._path or 'policy'}:{line_of(self._root, loc)}"

    @field_validator("systems")
    @classmethod
    def _check_systems(cls, systems: list[System], info: ValidationInfo) -> list[System]:
        _unique((system.id for system in systems), "system id")
        defaults = info.data.get("defaults")
        for system in systems:
            if not (system.approver_channel or (defaults and defaults.approver_channel)):
                raise ValueError(
                    f"system {system.id!r} has no approver_channel and defaults has none"
                )
        return systems

    # --- pure questions ---
    def system(self, system_id: str) -> System | None:
        return next((system for system in self.systems if system.id == system_id), None)

    def system_and_role(self, system_id: str, role_id: str) -> tuple[System | None, Role | None]:
        """The system and its role as the policy has them now (None for what it no longer has)."""
        system = self.system(system_id)
        return system, system.role(role_id) if system else None

    def approver_channel(self, system: System) -> str:
        channel = system.approver_channel or self.defaults.approver_channel
        assert channel is not None  # guaranteed by _check
        return channel

    def ticket_pattern(self, system: System) -> str | None:
        return system.ticket_pattern or self.defaults.ticket_pattern

    def max_duration(self, system: System, role: Role) -> timedelta:
        return role.max_duration or system.max_duration or self.defaults.max_duration

    def duration_choices(self, system: System, role: Role | None) -> list[timedelta]:
        """The modal's duration options: the standard steps up to the role's (or system's) max."""
        limit = (
            self.max_duration(system, role)
            if role
            else max(self.max_duration(system, r) for r in system.roles)
        )
        return self.duration_choices_up_to(limit)

    @staticmethod
    def duration_choices_up_to(limit: timedelta) -> list[timedelta]:
        """The standard steps shorter than `limit`, then `limit` itself (none for zero)."""
        if limit <= timedelta(0):
            return []
        choices = [parse_duration(c) for c in DURATION_CHOICES if parse_duration(c) < limit]
        return [*choices, limit]

    def approvers_of(self, system: System, role_id: str | None = None) -> list[str]:
        """Who may approve (user ids and @group handles): the role's own list, else the
        system's. Without a role: everybody who approves any of the system's roles."""
        role = system.role(role_id) if role_id else None
        if role is not None:
            return list(role.approvers or system.approvers)
        lists = [system.approvers, *(r.approvers or [] for r in system.roles)]
        return list(dict.fromkeys(p for principals in lists for p in principals))

    def request_ttl(self, system: System) -> timedelta:
        return system.request_ttl or self.defaults.request_ttl

    def max_total(self, system: System, role: Role) -> timedelta:
        """The longest a session may last, extensions included."""
        return role.max_total or 2 * self.max_duration(system, role)

    def email_domains(self, system: System) -> list[str]:
        return system.email_domains or self.defaults.email_domains or []

    def retry_within(self, system: System) -> timedelta:
        return system.retry_within or self.defaults.retry_within

    def retry_until(self, system: System, approved_at: datetime) -> datetime:
        """Until when a failed grant of an access approved at `approved_at` may be retried."""
        return approved_at + self.retry_within(system)

    def identity_for(self, system: System, slack_id: str, email: str | None) -> str:
        """The provider-side user name for a Slack user: the `users:` override first, then the
        system's template. An identity taken from an email is only made from an address in the
        system's `email_domains` (so `svc_checkout@evil.test` never becomes `svc_checkout`);
        ValueError says why not."""
        override = self.users.get(slack_id)
        if override and override.identity:
            return override.identity
        if uses_email(system):
            if not email:
                raise ValueError(
                    f"no email is known for <@{slack_id}>; add an identity under `users:` in "
                    "the policy"
                )
            domain = email.rpartition("@")[2].lower()
            allowed = self.email_domains(system)
            if "@" not in email or domain not in allowed:
                raise ValueError(
                    f"your Slack email ({email}) is not in a domain {system.id} accepts "
                    f"({', '.join(allowed)}), so no {system.id} identity can be derived from it; "
                    "an approver can add one for you under `users:` in the policy"
                )
        return system.identity.format(
            email=email or "", email_local=(email or "").split("@")[0], slack_id=slack_id
        )

    def step_up(self, system: System, role_id: str) -> bool:
        """Must an approval of this role be confirmed by a fresh login at the identity
        provider? The role's `step_up`, else the system's, else the defaults'."""
        role = system.role(role_id)
        for choice in (role.step_up if role else None, system.step_up):
            if choice is not None:
                return choice
        return self.defaults.step_up

    def breakglass_step_up(self, system_id: str) -> bool:
        """Must the person breaking the glass on this system log in with MFA first?"""
        system = self.system(system_id)
        return system is not None and system.breakglass is not None and system.breakglass.step_up

    def uses_step_up(self) -> bool:
        """Does anything in the policy ask for step-up (then the OIDC settings are required)?"""
        return any(
            self.step_up(system, role.id)
            or (system.breakglass is not None and system.breakglass.step_up)
            for system in self.systems
            for role in system.roles
        )

    def check_ticket(self, system: System, ticket: str) -> str | None:
        """None when the ticket fits the policy, else the reason it does not."""
        pattern = self.ticket_pattern(system)
        if not ticket.strip():
            return "A ticket or incident ID is required."
        if pattern and not ticket_regex(pattern).search(ticket.strip()):
            return f"Ticket must match {pattern} (e.g. PAY-184 or INC-7)."
        return None


def uses_email(system: System) -> bool:
    """Does the system's identity template take the person's email (or its local part)?"""
    return any(
        name in ("email", "email_local") for _, name, _, _ in Formatter().parse(system.identity)
    )


def _unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


class PolicyError(Exception):
    """The policy file is unusable; str() is `file:line: key.path: reason`."""


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyError(
            f"{path}: cannot read policy file: {exc.strerror}; start from the example: "
            f"`cp policy.example.yml {path}`"
        ) from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc.strerror}") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}:1: the policy must be a mapping with `systems:`")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(describe_error(path, root, exc)) from None
    policy._path, policy._root = path, root
    _check_email_domains(policy)
    for loc, problem in escalation_problems(policy):  # the first one stops start-up
        raise PolicyError(f"{policy.locate(loc)}: {key_path(loc)}: {problem}")
    return policy


def _check_email_domains(policy: Policy) -> None:
    """An identity derived from an email needs the domains it may come from: without them,
    anyone whose Slack profile says `svc_checkout@elsewhere` would be granted as svc_checkout."""
    for index, system in enumerate(policy.systems):
        problem = email_domains_problem(policy, system)
        if problem:
            raise PolicyError(
                f"{policy.locate(['systems', index, 'identity'])}: systems[{index}].identity: "
                + problem
            )


def email_domains_problem(policy: Policy, system: System) -> str | None:
    """Why the system's identity cannot be derived safely (see `_check_email_domains`), or
    None. `prod-access policy check` asks it of every system."""
    if uses_email(system) and not policy.email_domains(system):
        return (
            f"{system.identity!r} derives the identity from the Slack email; list the "
            "domains those emails may come from in `email_domains` (in defaults or in the "
            "system), e.g. email_domains: [example.com]"
        )
    return None
