"""The github_team adapter against a fake GitHub (tests/fakes/github_api.py) on localhost: the
contract, the exact requests, clear final and retryable errors, and through the bot a revoke
that fails with a 5xx and then a timeout, retried until GitHub confirms the membership is gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.models import SessionState
from app.policy import PolicyError, load_policy
from app.providers.base import ProviderError, build_providers
from app.providers.github_team import GitHubTeamConfig, GitHubTeamProvider
from tests.conftest import BOB, LEAD1, BotHarness, make_settings, write_policy
from tests.fakes.github_api import FakeGitHub
from tests.fakes.local_server import LocalServer, Reply, Request
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.provider_contract import access_for, grant_check_revoke_check

TOKEN = "ghp_test0123456789abcdef"
TEAM = "prod-admins"
GITHUB_SYSTEM = """\
  - id: github
    name: GitHub production team
    provider: github_team
    config: {{org: acme, token_env: TEST_GITHUB_TOKEN, api_url: '{url}', timeout: 0.5}}
    identity: '{{email_local}}'
    email_domains: [example.com]
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: prod-admins, max_duration: 1h}}
"""


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("TEST_GITHUB_TOKEN", TOKEN)
    with FakeGitHub(TOKEN, outsiders=("carol",)) as fake:
        yield fake


def provider_for_url(url: str, **overrides: object) -> GitHubTeamProvider:
    values = {"org": "acme", "token_env": "TEST_GITHUB_TOKEN", "api_url": url, **overrides}
    return GitHubTeamProvider(GitHubTeamConfig.model_validate(values))


def provider_for(github: FakeGitHub, **overrides: object) -> GitHubTeamProvider:
    return provider_for_url(github.url, **overrides)


def test_github_team_membership_is_added_checked_and_removed(github: FakeGitHub) -> None:
    provider = provider_for(github)
    grant_check_revoke_check(
        provider, access_for("bob", TEAM), lambda: github.is_member(TEAM, "bob")
    )
    calls = github.calls
    assert [(c.method, c.path) for c in calls[:2]] == [
        ("GET", "/orgs/acme/teams/prod-admins/memberships/bob"),
        ("PUT", "/orgs/acme/teams/prod-admins/memberships/bob"),
    ]
    put = calls[1]
    assert put.body == {"role": "member"}
    assert put.headers["authorization"] == f"Bearer {TOKEN}"
    assert put.headers["accept"] == "application/vnd.github+json"
    assert put.headers["x-github-api-version"] == "2022-11-28"
    assert put.headers["content-type"] == "application/json"
    deletes = [c for c in calls if c.method == "DELETE"]
    assert len(deletes) == 2 and all(c.body is None for c in deletes)


def test_github_pending_invitation_counts_as_access_and_is_cancelled_by_revoke(
    github: FakeGitHub,
) -> None:
    provider = provider_for(github, role="maintainer")
    access = access_for("carol", TEAM)
    note = provider.grant(access)
    assert note == "carol was invited to acme; access starts on accepting"
    assert provider.check(access)
    provider.revoke(access)
    assert not provider.check(access) and not github.is_member(TEAM, "carol")
    assert github.calls[0].body == {"role": "maintainer"}


def test_github_refusals_are_final_and_name_the_answer(github: FakeGitHub) -> None:
    with pytest.raises(ProviderError) as unknown_team:
        provider_for(github).grant(access_for("bob", "no-such-team"))
    assert str(unknown_team.value) == (
        'GitHub answered HTTP 404: {"message": "Not Found", '
        '"documentation_url": "https://docs.github.com/rest"}'
    )
    assert unknown_team.value.retryable is False

    github.token = "ghp_rotated"
    with pytest.raises(ProviderError) as bad_token:
        provider_for(github).check(access_for("bob", TEAM))
    assert str(bad_token.value) == 'GitHub answered HTTP 401: {"message": "Bad credentials"}'
    assert bad_token.value.retryable is False


def test_github_5xx_and_timeout_are_retryable_failures(github: FakeGitHub) -> None:
    provider = provider_for(github, timeout=0.3)
    github.script.fail(502)
    with pytest.raises(ProviderError) as bad_gateway:
        provider.grant(access_for("bob", TEAM))
    assert str(bad_gateway.value) == 'GitHub answered HTTP 502: {"message": "scripted HTTP 502"}'
    assert bad_gateway.value.retryable
    github.script.hang(1.0)
    with pytest.raises(ProviderError) as timeout:
        provider.grant(access_for("bob", TEAM))
    assert str(timeout.value) == "GitHub timed out after 0.3s" and timeout.value.retryable
    assert not github.is_member(TEAM, "bob")


def test_github_rate_limit_is_a_retryable_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GITHUB_TOKEN", TOKEN)

    def limited(_: Request) -> Reply:
        message = {"message": "API rate limit exceeded for installation ID 1."}
        return Reply(403, message, {"X-RateLimit-Remaining": "0"})

    server = LocalServer(limited)
    server.start()
    try:
        provider = provider_for_url(f"http://127.0.0.1:{server.port}")
        with pytest.raises(ProviderError) as limited_error:
            provider.revoke(access_for("bob", TEAM))
    finally:
        server.stop()
    assert str(limited_error.value) == (
        'GitHub rate limit reached: {"message": "API rate limit exceeded for installation ID 1."}'
    )
    assert limited_error.value.retryable


def test_identifiers_are_escaped_into_the_path_never_interpreted(github: FakeGitHub) -> None:
    provider = provider_for(github)
    assert not provider.check(access_for("../../../user", TEAM))
    assert github.calls[-1].path == "/orgs/acme/teams/prod-admins/memberships/..%2F..%2F..%2Fuser"


def test_missing_github_token_stops_start_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "x" * 16)
    monkeypatch.delenv("TEST_GITHUB_TOKEN", raising=False)
    policy = write_policy(
        tmp_path / "policy.yml", "http://127.0.0.1:9/hook", GITHUB_SYSTEM.format(url="http://x")
    )
    with pytest.raises(PolicyError, match=r"environment variable TEST_GITHUB_TOKEN is not set$"):
        build_providers(load_policy(policy))


@pytest.fixture
def github_bot(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, github: FakeGitHub
) -> Iterator[BotHarness]:
    policy = write_policy(
        tmp_path / "policy.yml", webhook.url, GITHUB_SYSTEM.format(url=github.url)
    )
    harness = BotHarness(make_settings(tmp_path, slack, policy), slack)
    yield harness
    harness.stop()


def test_github_revoke_failing_with_5xx_then_timeout_is_retried_until_verified_gone(
    github_bot: BotHarness, github: FakeGitHub
) -> None:
    request_id = github_bot.quick_request("github admin 1h PAY-20 fix the deploy key", BOB)
    github_bot.send.click("approve_request", request_id, LEAD1)
    github_bot.wait_session(request_id, SessionState.active)
    assert github.is_member(TEAM, "bob")

    github.script.fail(503)
    clock.travel(timedelta(hours=1, seconds=1))
    github_bot.sweep()
    failing = github_bot.wait_session(request_id, SessionState.revoke_failing)
    assert failing.last_error == 'GitHub answered HTTP 503: {"message": "scripted HTTP 503"}'
    github_bot.slack.wait_for(
        "chat.postMessage", lambda a: "Revoke failed (attempt 1)" in a.get("text", "")
    )

    github.script.hang(2.0)
    clock.travel(timedelta(seconds=2))
    github_bot.sweep()
    failing = github_bot.wait_session(request_id, SessionState.revoke_failing)
    assert (failing.attempts, failing.last_error) == (2, "GitHub timed out after 0.5s")
    assert github.is_member(TEAM, "bob")  # still there, and the card says so

    clock.travel(timedelta(seconds=5))
    github_bot.sweep()
    github_bot.wait_session(request_id, SessionState.ended)
    assert not github.is_member(TEAM, "bob")
    assert [c.method for c in github.calls] == ["PUT", "DELETE", "DELETE", "DELETE", "GET"]
    assert json.dumps(github.calls[0].body) == '{"role": "member"}'
