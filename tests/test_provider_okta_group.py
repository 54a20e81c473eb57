"""The okta_group adapter against a fake Okta (tests/fakes/okta_api.py) on localhost: the
contract, the exact requests and SSWS header, pages of groups, clear final and retryable errors,
and through the bot a grant that times out and is retried by an approver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.models import SessionState
from app.providers.base import ProviderError
from app.providers.okta_group import OktaGroupConfig, OktaGroupProvider
from tests.blocks_helpers import offers
from tests.conftest import BOB, LEAD1, BotHarness, make_settings, write_policy
from tests.fakes.okta_api import FakeOkta
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.provider_contract import access_for, grant_check_revoke_check

TOKEN = "00okta-test-token-0123456789"
GROUP = "00gPRODADMIN"
BOB_ID = "00ubob0000000001"


@pytest.fixture
def okta(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOkta]:
    monkeypatch.setenv("TEST_OKTA_TOKEN", TOKEN)
    groups = ("00gA", "00gB", "00gC", GROUP)
    with FakeOkta(TOKEN, groups=groups) as fake:
        yield fake


def provider_for(okta: FakeOkta, **overrides: object) -> OktaGroupProvider:
    values = {"api_url": okta.url, "token_env": "TEST_OKTA_TOKEN", **overrides}
    return OktaGroupProvider(OktaGroupConfig.model_validate(values))


def test_okta_group_membership_is_added_checked_and_removed(okta: FakeOkta) -> None:
    provider = provider_for(okta)
    grant_check_revoke_check(
        provider,
        access_for("bob@example.com", GROUP),
        lambda: okta.is_member(GROUP, "bob@example.com"),
    )
    changes = [(c.method, c.path) for c in okta.calls if c.method in ("PUT", "DELETE")]
    assert changes == [
        ("PUT", f"/api/v1/groups/{GROUP}/users/{BOB_ID}"),
        ("PUT", f"/api/v1/groups/{GROUP}/users/{BOB_ID}"),
        ("DELETE", f"/api/v1/groups/{GROUP}/users/{BOB_ID}"),
        ("DELETE", f"/api/v1/groups/{GROUP}/users/{BOB_ID}"),
    ]
    assert all(c.headers["authorization"] == f"SSWS {TOKEN}" for c in okta.calls)
    assert okta.calls[0].path == "/api/v1/users/bob%40example.com"


def test_okta_check_follows_pages_of_groups(okta: FakeOkta) -> None:
    okta.page_size = 1
    for group in ("00gA", "00gB", "00gC"):
        okta.add_member(group, "bob@example.com")
    provider = provider_for(okta)
    access = access_for("bob@example.com", GROUP)
    assert not provider.check(access)
    pages = [c for c in okta.calls if c.path.endswith("/groups")]
    assert [c.query for c in pages] == [
        "limit=200",
        "after=00gA&limit=1",
        "after=00gB&limit=1",
    ]
    okta.add_member(GROUP, "bob@example.com")
    assert provider.check(access)


def test_okta_unknown_user_cannot_be_granted_and_has_nothing_to_revoke(okta: FakeOkta) -> None:
    provider = provider_for(okta)
    nobody = access_for("nobody@example.com", GROUP)
    with pytest.raises(ProviderError) as missing:
        provider.grant(nobody)
    assert str(missing.value) == "Okta has no user 'nobody@example.com'"
    assert missing.value.retryable is False
    provider.revoke(nobody)
    assert not provider.check(nobody)


def test_okta_refusals_are_final_and_5xx_or_timeout_retryable(okta: FakeOkta) -> None:
    provider = provider_for(okta, timeout=0.3)
    access = access_for("bob@example.com", GROUP)
    with pytest.raises(ProviderError) as unknown_group:
        provider.grant(access_for("bob@example.com", "00gNOPE"))
    assert unknown_group.value.retryable is False
    assert "Okta answered HTTP 404" in str(unknown_group.value)

    okta.token = "rotated"
    with pytest.raises(ProviderError, match=r"Okta answered HTTP 401.*E0000011") as bad_token:
        provider.check(access)
    assert bad_token.value.retryable is False
    okta.token = TOKEN

    okta.script.fail(500)
    with pytest.raises(ProviderError, match=r"^Okta answered HTTP 500: ") as server_error:
        provider.grant(access)
    assert server_error.value.retryable
    okta.script.fail(429)
    with pytest.raises(ProviderError, match=r"^Okta answered HTTP 429: ") as rate_limited:
        provider.revoke(access)
    assert rate_limited.value.retryable
    okta.script.hang(1.0)
    with pytest.raises(ProviderError) as timeout:
        provider.grant(access)
    assert str(timeout.value) == "Okta timed out after 0.3s" and timeout.value.retryable
    assert not okta.is_member(GROUP, "bob@example.com")


def test_okta_grant_that_times_out_fails_visibly_and_an_approver_retry_grants(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, okta: FakeOkta
) -> None:
    system = f"""\
  - id: okta
    name: Okta production admins
    provider: okta_group
    config: {{api_url: '{okta.url}', token_env: TEST_OKTA_TOKEN, timeout: 0.5}}
    identity: '{{email}}'
    email_domains: [example.com]
    approvers: [U0LEAD1, U0LEAD2]
    roles:
      - {{id: admin, grant: {GROUP}, max_duration: 1h}}
"""
    bot = BotHarness(
        make_settings(tmp_path, slack, write_policy(tmp_path / "p.yml", webhook.url, system)), slack
    )
    try:
        okta.script.hang(2.0)
        request_id = bot.quick_request("okta admin 30m INC-4 unlock accounts", BOB)
        bot.send.click("approve_request", request_id, LEAD1)
        failed = bot.wait_session(request_id, SessionState.grant_failed)
        assert failed.last_error == "Okta timed out after 0.5s"
        bot.slack.wait_for("chat.update", lambda a: offers(a.get("blocks"), "retry_grant"))
        bot.send.click("retry_grant", failed.id, "U0LEAD2")
        bot.wait_session(request_id, SessionState.active)
        assert okta.is_member(GROUP, "bob@example.com")
    finally:
        bot.stop()
