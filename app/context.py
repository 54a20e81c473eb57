"""What every operation and job is handed: policy, providers, database, notifier, directory.

Operations never import Slack: they tell a `Notifier` what happened (after commit) and ask a
`Directory` for a person's email. With Slack, the notifier is the outbox (app/delivery), which
delivers to Slack's notifier, and the directory is Slack's; without, the quiet ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.delivery.notices import Notifier
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


@dataclass
class AppContext:
    settings: Settings
    policy: Policy
    providers: dict[str, Provider]
    db: sessionmaker[Session]
    notify: Notifier
    directory: Directory
    oncall: OnCall | None = None
    oidc: OidcClient | None = None  # step-up approvals (None: the OIDC settings are not set)
    trackers: Trackers | None = None  # ticket trackers (None: built without the policy's)
