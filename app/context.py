"""What every operation and job is handed: policy, providers, database, notifier, directory.

Operations never import Slack: they tell a `Notifier` what happened (after commit) and ask a
`Directory` for a person's email. With Slack, the notifier is the outbox (app/delivery), which
delivers to Slack's notifier, and the directory is Slack's; without, the quiet ones.

The policy and the providers built from it are one snapshot (`PolicyInForce`), replaced as a
whole by a reload (app/policy_reload.py). Work that pins it (`pinned()`: each Slack request and
the work it hands on after its ack) reads the snapshot it started with to the end; other reads
get the one in force now. The session factory carries the context under
`audit.POLICY_IN_FORCE`, so every audit event records the hash of the policy in force.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.audit import POLICY_IN_FORCE
from app.config import Settings
from app.delivery.notices import Notifier
from app.group_commit import GroupCommit
from app.oidc import OidcClient
from app.policy import Policy
from app.providers.base import Provider
from app.trackers.base import Trackers


class Directory(Protocol):
    def email_for(self, user_id: str) -> str | None: ...

    def group_members(self, handle: str) -> set[str]:
        """User ids in the user group `handle` (without @); LookupError if it can't be told."""
        ...

    def group_id(self, handle: str) -> str | None:
        """The user group's id (for a <!subteam^ID> mention), None if unknown."""
        ...


class OnCall(Protocol):
    """Who is on call (PagerDuty): raises when it can't tell."""

    def is_on_call(self, schedule_id: str, email: str) -> bool: ...


class NoDirectory:
    def email_for(self, user_id: str) -> str | None:
        return None

    def group_members(self, handle: str) -> set[str]:
        raise LookupError("user groups can't be resolved without Slack")

    def group_id(self, handle: str) -> str | None:
        return None


@dataclass(frozen=True)
class PolicyInForce:
    """A policy, the providers built from it, and the sha256 of the file it was read from."""

    policy: Policy
    providers: dict[str, Provider]
    sha256: str | None = None
    trackers: Trackers | None = None  # ticket trackers (None: built without the policy's)


_PINNED: contextvars.ContextVar[tuple[AppContext, PolicyInForce] | None] = contextvars.ContextVar(
    "prod_access_pinned_policy", default=None
)


class AppContext:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        providers: dict[str, Provider],
        db: sessionmaker[Session],
        notify: Notifier,
        directory: Directory,
        oncall: OnCall | None = None,
        oidc: OidcClient | None = None,  # step-up approvals (None: the OIDC settings are not set)
        policy_sha256: str | None = None,
        trackers: Trackers | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        #: Writes a Slack request makes before its ack, committed together (app/group_commit.py).
        self.writes = GroupCommit(db)
        self.notify = notify
        self.directory = directory
        self.oncall = oncall
        self.oidc = oidc
        self._in_force = PolicyInForce(policy, providers, policy_sha256, trackers)
        #: Held by a reload from its validation to its swap: one reload at a time.
        self.reloading = threading.Lock()
        #: Told when a session's end is set (a grant committed), so the expiry timer can run in
        #: time for it (app/jobs/scheduler.py sets it when the timers start).
        self.expiry_set: Callable[[datetime], None] | None = None
        db.configure(info={**(db.kw.get("info") or {}), POLICY_IN_FORCE: self})

    @property
    def in_force(self) -> PolicyInForce:
        """The snapshot this work pinned, else the one in force now."""
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self:
            return pinned[1]
        return self._in_force

    @property
    def in_force_now(self) -> PolicyInForce:
        """The snapshot in force now, even inside pinned work (what a reload replaces)."""
        return self._in_force

    @property
    def policy(self) -> Policy:
        return self.in_force.policy

    @property
    def providers(self) -> dict[str, Provider]:
        return self.in_force.providers

    @property
    def policy_sha256(self) -> str | None:
        return self.in_force.sha256

    @property
    def trackers(self) -> Trackers | None:
        return self.in_force.trackers

    def replace_policy(self, new: PolicyInForce) -> PolicyInForce:
        """Put `new` in force (one assignment: readers see the old snapshot or the new one,
        never half of each); the old one is returned. Callers hold `reloading`."""
        old, self._in_force = self._in_force, new
        return old

    @contextmanager
    def pinned(self) -> Iterator[PolicyInForce]:
        """Within the block (and contexts copied from it), this context's policy is the one in
        force when the block began, whatever a reload does meanwhile."""
        snapshot = self.in_force  # a block inside pinned work keeps the outer snapshot
        token = _PINNED.set((self, snapshot))
        try:
            yield snapshot
        finally:
            _PINNED.reset(token)
