"""The provider Protocol, its one error type, and the registry that finds providers by name.

A provider is a small class with a pydantic `Config`, built once at start from the policy's
`config:` block, with three calls:

- `grant(access)` and `revoke(access)` change the access and are safe to repeat (granting what
  is granted, or revoking what is gone, succeeds). Either may return a short note (e.g. a
  command's output) that the audit event keeps.
- `check(access) -> bool` asks the target whether the access is present right now. A revoke is
  only trusted once `check` says the access is gone; the reconciliation job asks it too.

Optionally, `probe() -> str | None` (not part of the Protocol; `prod-access check` looks for it
with getattr) makes one cheap call that changes nothing, proving the config, the credentials and
that the target answers: it returns a short detail for the check's table, or raises
`ProviderError` saying what is wrong.

Names are looked up in the entry-point group `prod_access.providers`; an unknown name, a class
that lacks one of these calls, or a bad config stops start-up with file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from app.config import env_value
from app.plugins import plugin_class
from app.policy import Policy, PolicyError
from app.text import register_secret

ENTRY_POINT_GROUP = "prod_access.providers"
REQUIRED_CALLS = ("grant", "revoke", "check")


@dataclass(frozen=True)
class AccessGrant:
    """What a provider needs to know about one session's access."""

    session_id: str
    request_id: str
    system: str
    role: str
    grant: str
    slack_id: str
    email: str | None
    identity: str
    ticket: str
    reason: str
    expires_at: datetime | None


class ProviderError(Exception):
    """The provider could not do it. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ProviderConfigError(ValueError):
    """The provider's config (or the environment it names) is unusable."""


@runtime_checkable
class Provider(Protocol):
    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: Any) -> None: ...  # an instance of Config

    def grant(self, access: AccessGrant) -> str | None: ...

    def revoke(self, access: AccessGrant) -> str | None: ...

    def check(self, access: AccessGrant) -> bool: ...


def payload(action: str, access: AccessGrant) -> dict[str, object]:
    """The access as JSON, for adapters that hand it to someone else (webhook, command)."""
    return {
        "action": action,
        "session_id": access.session_id,
        "request_id": access.request_id,
        "system": access.system,
        "role": access.role,
        "grant": access.grant,
        "user": {"slack_id": access.slack_id, "email": access.email, "identity": access.identity},
        "ticket": access.ticket,
        "reason": access.reason,
        "expires_at": access.expires_at.isoformat().replace("+00:00", "Z")
        if access.expires_at
        else None,
    }


def _builtin() -> dict[str, str]:
    """The built-ins, for a checkout whose package metadata is not installed (same names as
    pyproject.toml's entry points)."""
    return {
        "postgres": "app.providers.postgres:PostgresProvider",
        "webhook": "app.providers.webhook:WebhookProvider",
        "command": "app.providers.command:CommandProvider",
        "github_team": "app.providers.github_team:GitHubTeamProvider",
        "okta_group": "app.providers.okta_group:OktaGroupProvider",
        "aws_identity_center": "app.providers.aws_identity_center:IdentityCenterProvider",
        "aws_iam_group": "app.providers.aws_iam_group:IamGroupProvider",
    }


def provider_class(name: str) -> type[Provider]:
    """The class registered under `name` (entry points first, then the built-ins)."""
    return plugin_class("provider", ENTRY_POINT_GROUP, name, _builtin(), REQUIRED_CALLS)  # type: ignore[no-any-return]


def build_providers(policy: Policy) -> dict[str, Provider]:
    """One provider instance per system, validated now so mistakes fail at start."""
    providers: dict[str, Provider] = {}
    for index, system in enumerate(policy.systems):
        where = ["systems", index]
        try:
            cls = provider_class(system.provider)
        except KeyError as exc:
            raise PolicyError(
                f"{policy.locate([*where, 'provider'])}: systems[{index}].provider: {exc.args[0]}"
            ) from None
        try:
            config = cls.Config.model_validate(system.config)
            providers[system.id] = cls(config)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = [*where, "config", *error["loc"]]
            key = ".".join(str(p) for p in error["loc"])
            raise PolicyError(
                f"{policy.locate(loc)}: systems[{index}].config.{key}: {error['msg']}"
            ) from None
        except ProviderConfigError as exc:
            raise PolicyError(
                f"{policy.locate([*where, 'config'])}: systems[{index}].config: {exc}"
            ) from None
    return providers


def env_secret(name: str) -> str:
    """A secret from the variable the policy names, read where the settings are read (the
    environment, then `.env`: app.config.env_value), checked at start (unset or blank stops
    it) and registered with app.text, so no card, DM, audit row or log line shows it."""
    value = env_value(name)
    if value is None:
        raise ProviderConfigError(f"environment variable {name} is not set")
    register_secret(value)
    return value
