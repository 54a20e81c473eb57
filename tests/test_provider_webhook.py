"""The webhook adapter's `check`: a signed POST with action "check", answered `{"present": …}`,
against the stateful webhook target; an answer without it is an error, never a guess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.providers.base import ProviderError
from app.providers.webhook import WebhookConfig, WebhookProvider
from tests.fakes.local_server import LocalServer, Reply, Request
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.provider_contract import access_for, grant_check_revoke_check


def provider_for(url: str) -> WebhookProvider:
    return WebhookProvider(WebhookConfig(url=url, secret_env="TEST_WEBHOOK_SECRET", timeout=2))


def test_webhook_check_is_a_signed_request_answered_from_the_targets_state(
    webhook: WebhookReceiver,
) -> None:
    access = access_for("bob@example.com", "orders-admin")
    grant_check_revoke_check(
        provider_for(webhook.url),
        access,
        lambda: ("bob@example.com", "orders-admin") in webhook.held(),
    )
    checks = [r for r in webhook.requests if r.body["action"] == "check"]
    assert len(checks) == 5
    assert all(r.signature_valid for r in checks)
    assert {r.headers["idempotency-key"] for r in checks} == {"S-TEST0001:check"}
    assert checks[0].body["user"]["identity"] == "bob@example.com"
    assert webhook.actions() == ["grant", "grant", "revoke", "revoke"]


@pytest.fixture
def silent_target(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An older target that answers every request 200 {"ok": true}, check or not."""
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "whsec-old-target")

    def handle(_: Request) -> Reply:
        return Reply(200, {"ok": True})

    server = LocalServer(handle)
    server.start()
    yield f"http://127.0.0.1:{server.port}/hook"
    server.stop()


def test_webhook_check_without_a_present_answer_is_an_error(silent_target: str) -> None:
    with pytest.raises(ProviderError) as unknown:
        provider_for(silent_target).check(access_for("bob@example.com", "orders-admin"))
    assert str(unknown.value) == 'webhook answered a check without {"present": true|false}'
    assert unknown.value.retryable is False
