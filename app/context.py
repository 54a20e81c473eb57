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
    def request_decided(self, request: AccessRequest) -> None: ...
    def session_granted(self, session: AccessSession) -> None: ...
    def grant_failed(self, session: AccessSession) -> None: ...
    def session_ended(self, session: AccessSession) -> None: ...
    def revoke_failed(self, session: AccessSession) -> None: ...
    def closeout_reminder(self, session: AccessSession) -> None: ...
    def closeout_recorded(self, session: AccessSession) -> None: ...
    def drift_found(self, session: AccessSession, detail: str) -> None: ...


class Directory(Protocol):
    def email_for(self, user_id: str) -> str | None: ...


class QuietNotifier:
    """For the command line and tests of operations: nobody to tell."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


class NoDirectory:
    def email_for(self, user_id: str) -> str | None:
        return None


@dataclass
class AppContext:
    settings: Settings
    policy: Policy
    providers: dict[str, Provider]
    db: sessionmaker[Session]
    notify: Notifier
    directory: Directory
