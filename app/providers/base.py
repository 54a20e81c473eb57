"""The provider Protocol, its one error type, and the registry that finds providers by name.

A provider is a small class with a pydantic `Config`, built once at start from the policy's
`config:` block, with `grant` and `revoke` that are safe to repeat (granting what is granted, or
revoking what is gone, succeeds). Names are looked up in the entry-point group
`prod_access.providers`; an unknown name or a bad config stops start-up with file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from app.policy import Policy, PolicyError

ENTRY_POINT_GROUP = "prod_access.providers"


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

    def grant(self, access: AccessGrant) -> None: ...

    def revoke(self, access: AccessGrant) -> None: ...


def _builtin() -> dict[str, type]:
    from app.providers.postgres import PostgresProvider
    from app.providers.webhook import WebhookProvider

    return {"postgres": PostgresProvider, "webhook": WebhookProvider}


def provider_class(name: str) -> type:
    """The class registered under `name` (entry points first, then the built-ins)."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry.load()  # type: ignore[no-any-return]
    builtin = _builtin()
    if name in builtin:
        return builtin[name]
    known = sorted({e.name for e in entry_points(group=ENTRY_POINT_GROUP)} | set(builtin))
    raise KeyError(f"unknown provider {name!r}; known: {', '.join(known)}")


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


def short(text: Any, limit: int = 300) -> str:
    """Provider error text for cards and audit rows: one line, bounded."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
