"""What every operation and job is handed: policy, providers, database, notifier, directory.

Operations never import Slack: they tell a `Notifier` what happened (after commit) and ask a
`Directory` for a person's email. The Slack layer implements both; the CLI uses the quiet ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import AccessRequest, AccessSession
from app.policy import Policy
from app.providers.base import Provider


class Notifier(Protocol):
    """Tells people what happened. Called after the state is committed; may fail harmlessly."""

    def request_created(self, request: AccessRequest) -> None: ...
    def approval_counted(self, request: AccessRequest, approver_id: str) -> None: ...
    def request_decided(self, request: AccessRequest) -> None: ...
    def breakglass_escalated(self, request: AccessRequest) -> None: ...
    def breakglass_reviewed(self, request: AccessRequest) -> None: ...
    def session_granted(self, session: AccessSession) -> None: ...
    def grant_failed(self, session: AccessSession) -> None: ...
    def session_ended(self, session: AccessSession) -> None: ...
    def revoke_failed(self, session: AccessSession) -> None: ...
    def closeout_reminder(self, session: AccessSession) -> None: ...
    def closeout_recorded(self, session: AccessSession) -> None: ...
    def closeout_missing(self, session: AccessSession) -> None: ...
    def drift_found(self, session: AccessSession, detail: str) -> None: ...
    def home_opened(self, user_id: str) -> None: ...


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


class QuietNotifier:
    """For the command line and tests of operations: nobody to tell."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


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
