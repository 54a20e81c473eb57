"""Third-party providers through the entry-point group `prod_access.providers`: a tiny
distribution (tests/fixtures/ledger_plugin) is pip-installed into the running environment (no
network, no build isolation), named in a policy file, and used by the bot and by a fresh
`prod-access` process; broken plugins stop start-up with the reason. Uninstalled afterwards.
The whole module runs on one xdist worker (tests/conftest.py, ONE_WORKER_MODULES): the
environment is shared, and another worker's copy of the fixture would uninstall the plugin
from under this one."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app import audit, clock
from app.db import transaction
from app.models import SessionState
from app.policy import PolicyError, load_policy
from app.providers.base import build_providers, provider_class
from tests.conftest import (
    BOB,
    LEAD1,
    BotHarness,
    make_settings,
    run_cli,
    run_cli_here,
    write_policy,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

PLUGIN_SOURCE = Path(__file__).parent / "fixtures" / "ledger_plugin"
DISTRIBUTION = "prod-access-ledger-plugin"


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def ledger_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The plugin installed for this module's tests (built from a copy: the build leaves
    build/ and *.egg-info behind, which must not land in the repository)."""
    source = shutil.copytree(PLUGIN_SOURCE, tmp_path_factory.mktemp("plugin") / "ledger_plugin")
    _pip("install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    importlib.invalidate_caches()
    try:
        yield DISTRIBUTION
    finally:
        _pip("uninstall", "--quiet", "--yes", DISTRIBUTION)
        importlib.invalidate_caches()


def _ledger_system(path: Path, provider: str = "ledger", config: str | None = None) -> str:
    return f"""\
  - id: ops-ledger
    name: Ops ledger
    provider: {provider}
    config: {config or f"{{path: '{path}'}}"}
    identity: '{{email_local}}'
    email_domains: [example.com]
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: ops-admin, max_duration: 1h}}
"""


def test_provider_from_an_installed_distribution_is_used_by_name_in_the_policy(
    ledger_plugin: str, tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    ledger = tmp_path / "ledger.txt"
    policy = write_policy(tmp_path / "policy.yml", webhook.url, _ledger_system(ledger))
    bot = BotHarness(make_settings(tmp_path, slack, policy), slack)
    try:
        request_id = bot.quick_request("ops-ledger admin 1h OPS-1 rotate the certificate", BOB)
        bot.send.click("approve_request", request_id, LEAD1)
        bot.wait_session(request_id, SessionState.active)
        assert ledger.read_text() == "bob ops-admin\n"
        clock.travel(timedelta(hours=1, seconds=1))
        bot.sweep()
        bot.wait_session(request_id, SessionState.ended)  # the plugin's check said: gone
        assert ledger.read_text() == ""
        with transaction(bot.ctx.db) as db:
            granted = next(e for e in audit.events(db, request_id) if e.event == "granted")
        assert granted.detail["provider_note"] == "written to ledger.txt"
    finally:
        bot.stop()


def test_a_fresh_prod_access_process_finds_the_plugin(
    ledger_plugin: str, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    policy = write_policy(tmp_path / "policy.yml", webhook.url, _ledger_system(tmp_path / "l"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env |= {"POLICY_FILE": str(policy), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    assert run_cli_here(tmp_path, env, "db", "upgrade").returncode == 0
    result = run_cli(tmp_path, env, "reconcile")  # a new process: the plugin found afresh
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "checked 0 recently ended access(es) and 0 active session(s): 0 finding(s)"
    )


def test_plugin_that_lacks_check_cannot_load_or_is_misconfigured_stops_start(
    ledger_plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "x" * 16)

    def start(system: str) -> str:
        policy = write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook", system)
        with pytest.raises(PolicyError) as stopped:
            build_providers(load_policy(policy))
        return str(stopped.value)

    ledger = tmp_path / "ledger.txt"
    assert start(_ledger_system(ledger, "ledger_without_check")).endswith(
        "systems[1].provider: provider 'ledger_without_check' "
        "(prod_access_ledger_plugin:NoCheckProvider) lacks check"
    )
    assert start(_ledger_system(ledger, "ledger_gone")).endswith(
        "systems[1].provider: provider 'ledger_gone' "
        "(prod_access_ledger_plugin_gone:LedgerProvider) cannot be loaded: "
        "ModuleNotFoundError: No module named 'prod_access_ledger_plugin_gone'"
    )
    assert start(_ledger_system(ledger, config="{file: x}")).endswith(
        "systems[1].config.path: Field required"
    )
    with pytest.raises(KeyError) as unknown:
        provider_class("ledgr")
    assert "known: aws_iam_group, aws_identity_center, command, github_team, ledger," in str(
        unknown.value
    )
