"""Secrets as an operator sets them: a required secret set but blank (`SLACK_SIGNING_SECRET=`, or
only spaces) stops `prod-access serve` with one line naming it and is a PROBLEM in `prod-access
check`, for the Slack credentials and every variable a provider names; nothing ever stands in
for the signing secret, so a request signed with an empty or made-up key is refused 401 in
every configuration; and a provider's secret written in `.env` is read like the settings are.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings, SettingsError, env_value
from app.policy import PolicyError, load_policy
from app.providers.base import build_providers
from app.providers.command import CommandConfig, CommandProvider
from app.runtime import build_bot, build_context
from app.serve import CHECK_HINT
from app.slack.after_ack import AfterAck
from app.slack.app import build_bolt_app, make_client
from tests.conftest import (
    BOB,
    LEAD1,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    BotHarness,
    run_cli_here,
    write_policy,
)
from tests.fakes.postgres import PostgresServer
from tests.fakes.serve import ServeProcess, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackSender
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.provider_contract import access_for
from tests.test_resilience import grant

BLANKS = pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
NOT_SET = "prod-access: {} is not set (see .env.example)"


@pytest.fixture
def env(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> dict[str, str]:
    return serve_env(tmp_path, slack, webhook)


def _one_line(stderr: str) -> str:
    """The one problem `serve` printed (before its pointer to `prod-access check`)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1] == CHECK_HINT, stderr
    return lines[0]


# --- serve stops ------------------------------------------------------------------------


@BLANKS
def test_serve_stops_on_a_blank_signing_secret_naming_it(
    tmp_path: Path, env: dict[str, str], blank: str
) -> None:
    result = run_cli_here(tmp_path, {**env, "SLACK_SIGNING_SECRET": blank}, "serve", "--http")
    assert result.returncode == 2
    assert _one_line(result.stderr) == NOT_SET.format("SLACK_SIGNING_SECRET")


@BLANKS
def test_serve_stops_on_a_blank_bot_token_or_app_token_naming_it(
    tmp_path: Path, env: dict[str, str], blank: str
) -> None:
    result = run_cli_here(tmp_path, {**env, "SLACK_BOT_TOKEN": blank}, "serve", "--http")
    assert result.returncode == 2
    assert _one_line(result.stderr) == NOT_SET.format("SLACK_BOT_TOKEN")
    result = run_cli_here(tmp_path, {**env, "SLACK_APP_TOKEN": blank}, "serve", "--socket")
    assert result.returncode == 2
    assert _one_line(result.stderr) == NOT_SET.format("SLACK_APP_TOKEN")


@BLANKS
def test_serve_stops_on_a_blank_provider_secret_naming_it(
    tmp_path: Path, env: dict[str, str], blank: str
) -> None:
    result = run_cli_here(tmp_path, {**env, "TEST_WEBHOOK_SECRET": blank}, "serve", "--http")
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith(f"prod-access: {env['POLICY_FILE']}:")
    assert line.endswith("systems[0].config: environment variable TEST_WEBHOOK_SECRET is not set")


SYSTEMS_NAMING_A_SECRET = {
    "postgres": "{dsn_env: BLANK_TEST_SECRET}",
    "webhook": "{url: 'http://127.0.0.1:9/hook', secret_env: BLANK_TEST_SECRET}",
    "command": "{argv: ['" + sys.executable + "'], env: [BLANK_TEST_SECRET]}",
    "okta_group": "{api_url: 'https://acme.okta.com', token_env: BLANK_TEST_SECRET}",
    "github_team": "{org: acme, token_env: BLANK_TEST_SECRET}",
}


@pytest.mark.usefixtures("webhook")
@BLANKS
@pytest.mark.parametrize("provider", sorted(SYSTEMS_NAMING_A_SECRET))
def test_every_provider_refuses_a_blank_secret_variable_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, blank: str
) -> None:
    monkeypatch.setenv("BLANK_TEST_SECRET", blank)
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    system = f"""\
  - id: target
    name: Target
    provider: {provider}
    config: {SYSTEMS_NAMING_A_SECRET[provider]}
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: admins}}
"""
    policy = write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook", system)
    with pytest.raises(PolicyError) as stopped:
        build_providers(load_policy(policy))
    named = " (named in env)" if provider == "command" else ""
    assert str(stopped.value).endswith(
        f"systems[1].config: environment variable BLANK_TEST_SECRET{named} is not set"
    )


# --- check shows them -------------------------------------------------------------------


def _check(tmp_path: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    result = run_cli_here(tmp_path, env, "check", "--json")
    assert result.returncode in (0, 1), result.stderr
    return {row["check"]: row for row in map(json.loads, result.stdout.splitlines())}


@BLANKS
def test_check_shows_a_blank_signing_secret_as_a_problem(
    tmp_path: Path, env: dict[str, str], blank: str
) -> None:
    rows = _check(tmp_path, {**env, "SLACK_SIGNING_SECRET": blank})
    assert rows["settings"]["status"] == "PROBLEM"
    assert "SLACK_SIGNING_SECRET" in rows["settings"]["detail"]


@BLANKS
def test_check_shows_a_blank_provider_secret_as_a_problem(
    tmp_path: Path, env: dict[str, str], blank: str
) -> None:
    rows = _check(tmp_path, {**env, "TEST_WEBHOOK_SECRET": blank})
    row = rows["provider orders-api (webhook)"]
    assert row["status"] == "PROBLEM"
    assert row["detail"].endswith("environment variable TEST_WEBHOOK_SECRET is not set")


# --- no key stands in for the signing secret ----------------------------------------------


def _settings(tmp_path: Path, slack: FakeSlack, signing_secret: str | None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-test-token",  # type: ignore[arg-type]
        slack_signing_secret=signing_secret,  # type: ignore[arg-type]
        slack_api_url=slack.url,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        policy_file=str(write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook")),
    )


@pytest.mark.usefixtures("webhook")
@pytest.mark.parametrize(
    "configured", [SIGNING_SECRET, "", "   ", None], ids=["secret", "empty", "spaces", "unset"]
)
def test_no_configuration_accepts_a_request_signed_with_an_empty_or_stand_in_key(
    tmp_path: Path,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
) -> None:
    # Bolt falls back to this variable itself when given no secret: it must not matter.
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "")
    settings = _settings(tmp_path, slack, configured)
    if configured != SIGNING_SECRET:
        with pytest.raises(SettingsError, match=r"^SLACK_SIGNING_SECRET is not set"):
            build_bot(settings)
        return
    harness = BotHarness(settings, slack)
    try:
        for forged_key in ("", "socket-mode", "   "):
            forger = SlackSender(harness.url, forged_key, slack.response_url())
            assert forger.command("orders-api read 30m PAY-1 look", BOB).status == 401
            assert forger.click("approve_request", "R-7K3Q9X2M", LEAD1).status == 401
        assert harness.send.command("help", BOB).status == 200
    finally:
        harness.stop()


@pytest.mark.usefixtures("webhook")
def test_an_http_bolt_app_is_never_built_without_a_signing_secret(
    tmp_path: Path, slack: FakeSlack
) -> None:
    """Past `require_slack` too (a caller that forgot it): no HTTP app, no stand-in key."""
    ctx = build_context(_settings(tmp_path, slack, None))
    later = AfterAck(1)
    try:
        with pytest.raises(SettingsError, match=r"^SLACK_SIGNING_SECRET is not set"):
            build_bolt_app(ctx, make_client(ctx.settings), later)
    finally:
        later.shutdown()


# --- provider secrets in .env ---------------------------------------------------------------


DOTENV_SYSTEMS = """\
  - id: checkout-db
    name: Checkout database
    provider: postgres
    config: {dsn_env: CHECKOUT_DB_ADMIN_DSN, connect_timeout: 2}
    approvers: [U0LEAD1]
    roles: [{id: read, grant: checkout_read}]
  - id: billing
    name: Billing
    provider: webhook
    config: {url: 'WEBHOOK_URL', secret_env: BILLING_WEBHOOK_SECRET}
    approvers: [U0LEAD1]
    roles: [{id: read, grant: billing-viewer}]
"""


def test_check_reads_provider_secrets_from_dotenv_like_the_settings(
    tmp_path: Path, env: dict[str, str], pg_server: PostgresServer, webhook: WebhookReceiver
) -> None:
    """The names .env.example tells people to put in `.env`, with nothing exported."""
    policy = Path(env["POLICY_FILE"])
    policy.write_text(policy.read_text() + DOTENV_SYSTEMS.replace("WEBHOOK_URL", webhook.url))
    (tmp_path / ".env").write_text(
        f"CHECKOUT_DB_ADMIN_DSN={pg_server.dsn}\nBILLING_WEBHOOK_SECRET=billing-0123456789\n"
    )
    exported = {
        k: v for k, v in env.items() if k not in ("CHECKOUT_DB_ADMIN_DSN", "BILLING_WEBHOOK_SECRET")
    }
    rows = _check(tmp_path, exported)
    assert rows["provider checkout-db (postgres)"]["status"] == "OK", rows
    assert rows["provider checkout-db (postgres)"]["detail"].startswith("connected as postgres")
    assert rows["provider billing (webhook)"] == {
        "check": "provider billing (webhook)",
        "status": "OK",
        "detail": "reachable (GET answered HTTP 200)",
    }


@pytest.fixture
def dotenv_server(tmp_path: Path, env: dict[str, str]) -> Iterator[ServeProcess]:
    """`serve` in a directory whose `.env` holds the webhook's secret, which is not exported."""
    (tmp_path / ".env").write_text(f"TEST_WEBHOOK_SECRET={WEBHOOK_SECRET}\n")
    exported = {k: v for k, v in env.items() if k != "TEST_WEBHOOK_SECRET"}
    server = ServeProcess(tmp_path, exported)
    server.start()
    yield server
    server.stop()


def test_serve_signs_provider_calls_with_the_secret_from_dotenv(
    dotenv_server: ServeProcess, env: dict[str, str], webhook: WebhookReceiver
) -> None:
    grant(dotenv_server, env, "orders-api read 30m PAY-184 look at a refund", BOB)
    assert [(r.body["action"], r.signature_valid) for r in webhook.requests] == [("grant", True)]


def test_a_command_gets_its_variables_from_dotenv_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "seen.json"
    spy = tmp_path / "spy.py"
    spy.write_text(
        textwrap.dedent(
            f"""\
            import json, os
            json.dump({{k: os.environ.get(k) for k in ("OPS_API_KEY", "OPS_REGION")}},
                      open({str(seen)!r}, "w"))
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OPS_API_KEY=from-dotenv-0123\nOPS_REGION=from-dotenv\n")
    monkeypatch.delenv("OPS_API_KEY", raising=False)
    monkeypatch.setenv("OPS_REGION", "from-environment")
    config = CommandConfig(argv=[sys.executable, str(spy)], env=["OPS_API_KEY", "OPS_REGION"])
    CommandProvider(config).revoke(access_for("bob", "sudo-ops"))
    assert json.loads(seen.read_text()) == {
        "OPS_API_KEY": "from-dotenv-0123",
        "OPS_REGION": "from-environment",
    }


def test_env_value_reads_the_environment_then_dotenv_and_blank_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ONLY_IN_FILE=file-value\nBLANK_IN_FILE=   \nBOTH=file\n")
    for name in ("ONLY_IN_FILE", "BLANK_IN_FILE", "NOWHERE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTH", "environment")
    monkeypatch.setenv("BLANK_IN_ENV", " ")
    assert env_value("ONLY_IN_FILE") == "file-value"
    assert env_value("BOTH") == "environment"
    assert env_value("BLANK_IN_FILE") is None
    assert env_value("BLANK_IN_ENV") is None
    assert env_value("NOWHERE") is None
    assert "ONLY_IN_FILE" not in os.environ  # read, not exported
