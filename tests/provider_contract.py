"""What every provider promises, as one helper each adapter's tests run against its target:
grant → check true → grant again (idempotent) → revoke → check false → revoke again."""

from __future__ import annotations

from collections.abc import Callable

from app.providers.base import AccessGrant, Provider


def access_for(
    identity: str,
    grant: str,
    *,
    system: str = "target",
    role: str = "admin",
    session_id: str = "S-TEST0001",
) -> AccessGrant:
    return AccessGrant(
        session_id=session_id,
        request_id="R-TEST0001",
        system=system,
        role=role,
        grant=grant,
        slack_id="U0BOB",
        email="bob@example.com",
        identity=identity,
        ticket="PAY-1",
        reason="contract test",
        expires_at=None,
    )


def grant_check_revoke_check(
    provider: Provider, access: AccessGrant, held_at_target: Callable[[], bool]
) -> None:
    """Run the contract; `held_at_target` reads the target's own state (not via the provider)."""
    assert not provider.check(access) and not held_at_target()
    provider.grant(access)
    assert provider.check(access) and held_at_target()
    provider.grant(access)  # granting what is granted succeeds
    assert provider.check(access) and held_at_target()
    provider.revoke(access)
    assert not provider.check(access) and not held_at_target()
    provider.revoke(access)  # revoking what is gone succeeds
    assert not provider.check(access) and not held_at_target()
