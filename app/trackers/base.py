"""The tracker Protocol, its errors, what a lookup answers (`Ticket`), and the registry that
builds one tracker per policy rule at start.

A tracker is a small class with a pydantic `Config`, built once at start from a rule's
`config:` block, with two calls:

- `lookup(ticket) -> Ticket`: the ticket or incident as the service has it now: title, status
  and its category (open, closed, resolved), assignees, link. `TicketNotFound` when the service
  says there is no such ticket; any other `TrackerError` means it could not tell.
- `comment(ticket, text)`: add `text` (plain text, no secrets: the caller builds it) to the
  ticket. Raises `TrackerError`; `retryable` says whether trying again may help.

Two optional class attributes say what kind of tracker it is: `incidents` (True: it tracks
incidents, whose resolution may end the access: `end_access_on_resolve` defaults to it) and
`takes_comments` (False: the service has no API for comments; a rule that asks for them fails
at start).

Rules (policy `defaults.trackers` and a system's `trackers`, each `{type, pattern, config, …}`):
the system's are tried first, in order, then the defaults'; the first whose `pattern` (RE2)
finds a match in the ticket handles it; a ticket no pattern matches is not looked up. An
unknown type, a class without the calls, or a bad config stops start-up with file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from app.plugins import plugin_class
from app.policy import Policy, PolicyError, System, TrackerRule
from app.policy_values import ticket_regex
from app.providers import rest
from app.providers.base import ProviderConfigError, ProviderError

ENTRY_POINT_GROUP = "prod_access.trackers"
REQUIRED_CALLS = ("lookup", "comment")

#: Where a ticket stands, whatever the service calls its statuses.
TicketState = Literal["open", "closed", "resolved"]


@dataclass(frozen=True)
class Person:
    """Someone a ticket is assigned to; the email only where the service shows it."""

    name: str
    email: str | None = None


@dataclass(frozen=True)
class Ticket:
    """A ticket or incident as its tracker has it now."""

    key: str  # as people write it: PAY-184, acme/api#12, INC-42
    title: str
    status: str  # the service's own word: "In Progress", "acknowledged", "live"
    state: TicketState
    url: str | None = None  # where a person opens it
    assignees: tuple[Person, ...] = ()
    is_incident: bool = False
    id: str | None = None  # the service's own id, where it differs from the key

    def assigned_to(self, email: str) -> bool:
        """Is the person with this email (any case) among the assignees?"""
        wanted = email.strip().lower()
        return any(p.email and p.email.strip().lower() == wanted for p in self.assignees)

    def assignee_names(self) -> str:
        return ", ".join(p.name for p in self.assignees)


class TrackerError(Exception):
    """The tracker could not answer or do it. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class TicketNotFound(TrackerError):
    """The tracker says there is no such ticket (or it does not show it to the bot's account)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def send(service: str, method: str, url: str, **options: Any) -> rest.Answer:
    """One call through the shared REST helper (app/providers/rest.py: timeouts, 5xx, 408 and
    429 retryable, URLs shown without secrets), its errors as TrackerError."""
    try:
        return rest.send(service, method, url, **options)
    except ProviderError as exc:
        raise TrackerError(str(exc), retryable=exc.retryable) from None


def refuse(service: str, answer: rest.Answer) -> TrackerError:
    """The error for an answer the adapter did not expect (bad token, bad request …)."""
    error = rest.refuse(service, answer)
    return TrackerError(str(error), retryable=error.retryable)


@runtime_checkable
class Tracker(Protocol):
    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: Any) -> None: ...  # an instance of Config

    def lookup(self, ticket: str) -> Ticket: ...

    def comment(self, ticket: str, text: str) -> None: ...


@dataclass(frozen=True)
class TrackerUse:
    """One policy rule with its tracker, built at start."""

    rule: TrackerRule
    tracker: Tracker
    where: str  # the rule's key path, e.g. systems[0].trackers[1]

    @property
    def name(self) -> str:
        """The service, as people know it (the adapter's SERVICE), for messages."""
        return str(getattr(self.tracker, "SERVICE", self.rule.type))

    @property
    def comments(self) -> bool:
        """Does this rule comment on its tickets?"""
        if self.rule.comment is not None:
            return self.rule.comment
        return bool(getattr(self.tracker, "takes_comments", True))

    @property
    def ends_access_on_resolve(self) -> bool:
        if self.rule.end_access_on_resolve is not None:
            return self.rule.end_access_on_resolve
        return bool(getattr(self.tracker, "incidents", False))


class Trackers:
    """The trackers of a policy: which one handles a system's ticket."""

    def __init__(self, defaults: list[TrackerUse], by_system: dict[str, list[TrackerUse]]) -> None:
        self._defaults = defaults
        self._by_system = by_system

    def for_ticket(self, system: System | str, ticket: str) -> TrackerUse | None:
        """The first rule (the system's, then the defaults') whose pattern matches `ticket`."""
        system_id = system if isinstance(system, str) else system.id
        uses: list[TrackerUse] = [*self._by_system.get(system_id, []), *self._defaults]
        for use in uses:
            if use.rule.pattern and ticket_regex(use.rule.pattern).search(ticket.strip()):
                return use
        return None

    def all(self) -> list[TrackerUse]:
        return [*self._defaults, *(u for uses in self._by_system.values() for u in uses)]


def _builtin() -> dict[str, str]:
    """The built-ins, for a checkout whose package metadata is not installed (same names as
    pyproject.toml's entry points)."""
    return {
        "jira": "app.trackers.jira:JiraTracker",
        "github_issues": "app.trackers.github_issues:GitHubIssuesTracker",
        "pagerduty_incidents": "app.trackers.pagerduty_incidents:PagerDutyIncidentsTracker",
        "incident_io": "app.trackers.incident_io:IncidentIoTracker",
    }


def tracker_class(name: str) -> type[Tracker]:
    """The class registered under `name` (entry points first, then the built-ins)."""
    return plugin_class("tracker", ENTRY_POINT_GROUP, name, _builtin(), REQUIRED_CALLS)  # type: ignore[no-any-return]


def build_trackers(policy: Policy) -> Trackers:
    """One tracker per rule, validated now so mistakes fail at start (file:line: key: why)."""
    defaults = [
        _build(policy, rule, ["defaults", "trackers", i])
        for i, rule in enumerate(policy.defaults.trackers)
    ]
    by_system = {
        system.id: [
            _build(policy, rule, ["systems", s, "trackers", i])
            for i, rule in enumerate(system.trackers)
        ]
        for s, system in enumerate(policy.systems)
    }
    return Trackers(defaults, by_system)


def _build(policy: Policy, rule: TrackerRule, where: list[Any]) -> TrackerUse:
    path = _key_path(where)

    def fail(loc: list[Any], suffix: str, reason: str) -> PolicyError:
        return PolicyError(f"{policy.locate([*where, *loc])}: {path}{suffix}: {reason}")

    try:
        cls = tracker_class(rule.type)
    except KeyError as exc:
        raise fail(["type"], ".type", exc.args[0]) from None
    try:
        tracker = cls(cls.Config.model_validate(rule.config))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise fail(["config", *error["loc"]], f".config.{key}", error["msg"]) from None
    except ProviderConfigError as exc:
        raise fail(["config"], ".config", str(exc)) from None
    if rule.comment and not getattr(cls, "takes_comments", True):
        raise fail(["comment"], ".comment", f"{rule.type} takes no comments; say comment: false")
    return TrackerUse(rule, tracker, path)


def _key_path(where: list[Any]) -> str:
    """["systems", 0, "trackers", 1] → "systems[0].trackers[1]"."""
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
