"""The files a newcomer copies fit together: `cp .env.example .env`, `cp policy.example.yml
policy.yml`, fill in what .env.example asks for, and `prod-access check` finds nothing wrong with
the settings or the policy; what is left is reaching Slack and the systems themselves.

What .env.example asks for is its own convention (stated at its top): an uncommented line with
nothing after `=` is to be filled in; a commented-out `# NAME=` line is optional. The example
policy's further providers are commented out, one system each, with `# ` in front of every
line of the system (its lines start `  # - ` or `  #   `); uncommenting removes that `# `.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from app.policy import Policy, load_policy
from app.providers.base import ENTRY_POINT_GROUP, provider_class
from tests.conftest import run_cli
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.serve import free_port
from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
POLICY_EXAMPLE = ROOT / "policy.example.yml"
ACTIVE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.M)
COMMENTED = re.compile(r"^# ([A-Z][A-Z0-9_]*)=", re.M)
COMMENTED_SYSTEM_LINE = re.compile(r"^  # (?=- |  )", re.M)
PAGERDUTY_TOKEN = "pd-newcomer-0123456789"


def asked_for() -> list[str]:
    """The variables .env.example leaves blank for the newcomer to fill in, in file order."""
    return [name for name, value in ACTIVE.findall(ENV_EXAMPLE.read_text()) if not value.strip()]


def documented() -> set[str]:
    text = ENV_EXAMPLE.read_text()
    return {name for name, _ in ACTIVE.findall(text)} | set(COMMENTED.findall(text))


def uncommented_policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy-all-providers.yml"
    path.write_text(COMMENTED_SYSTEM_LINE.sub("  ", POLICY_EXAMPLE.read_text()))
    return path


def variables_named(policy: Policy) -> set[str]:
    """Every variable a policy makes the bot read: each provider's `*_env`, a command's `env`,
    and PagerDuty's token where a role approves whoever is on call."""
    names: set[str] = set()
    for system in policy.systems:
        for key, value in system.config.items():
            if key.endswith("_env") and isinstance(value, str):
                names.add(value)
            elif key == "env" and isinstance(value, list):
                names.update(value)
        if any(role.auto_approve_oncall for role in system.roles):
            names.add("PAGERDUTY_TOKEN")
    return names


def test_env_example_asks_for_every_variable_the_example_policy_names(tmp_path: Path) -> None:
    in_use = variables_named(load_policy(POLICY_EXAMPLE))
    assert {"CHECKOUT_DB_ADMIN_DSN", "CHECKOUT_STAGING_ADMIN_DSN", "PAGERDUTY_TOKEN"} <= in_use
    assert sorted(in_use - set(asked_for())) == []

    # the commented-out systems' variables are documented too, ready to uncomment
    everything = variables_named(load_policy(uncommented_policy(tmp_path)))
    assert sorted(everything - documented()) == []


def test_every_built_in_provider_has_an_example_that_validates(tmp_path: Path) -> None:
    built_in = {
        ep.name
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.startswith("app.providers.")
    }
    policy = load_policy(uncommented_policy(tmp_path))  # raises PolicyError with file:line

    assert {system.provider for system in policy.systems} == built_in
    for system in policy.systems:
        provider_class(system.provider).Config.model_validate(system.config)


def fake_value(name: str) -> str:
    """A made-up but well-formed value for a variable .env.example asks for; every system is
    pointed at a closed local port, so a check that tries it fails only at connecting."""
    closed = free_port()
    if name == "SLACK_BOT_TOKEN":
        return "xoxb-newcomer-0123456789"
    if name == "SLACK_APP_TOKEN":
        return "xapp-1-A0NEWCOMER-0123456789"
    if name == "PAGERDUTY_TOKEN":
        return PAGERDUTY_TOKEN
    if name.endswith("_DSN"):
        return f"postgresql://access_admin:newcomer-pw@127.0.0.1:{closed}/{name.lower()}"
    if name.endswith(("_SECRET", "_TOKEN")):
        return f"newcomer-{name.lower()}-0123456789"
    pytest.fail(f".env.example asks for {name}: teach fake_value a well-formed value for it")


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(PAGERDUTY_TOKEN) as fake:
        yield fake


@pytest.fixture
def newcomer_dir(tmp_path: Path, slack: FakeSlack, pagerduty: FakePagerDuty) -> Path:
    """A directory after `cp .env.example .env`, `cp policy.example.yml policy.yml` and filling
    in every blank; Slack's and PagerDuty's URLs lead to the fakes instead of the internet."""
    home = tmp_path / "prod-access"
    home.mkdir()
    shutil.copy(POLICY_EXAMPLE, home / "policy.yml")
    values = {name: fake_value(name) for name in asked_for()}
    values |= {"SLACK_API_URL": slack.url, "PAGERDUTY_API_URL": pagerduty.url}
    filled = ACTIVE.sub(
        lambda m: f"{m[1]}={values[m[1]]}" if m[1] in values else m[0], ENV_EXAMPLE.read_text()
    )
    (home / ".env").write_text(filled)
    return home


def test_newcomer_with_both_examples_sees_no_problem_but_reaching_slack_and_systems(
    newcomer_dir: Path,
) -> None:
    # nothing from this machine's environment may stand in for what .env says
    mentioned = documented()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in mentioned and not k.startswith(("SLACK_", "PAGERDUTY_", "DATABASE_", "AWS_"))
    }
    result = run_cli(newcomer_dir, env, "check", "--json")
    assert result.returncode in (0, 1), result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_check = {row["check"]: row for row in rows}

    assert by_check["settings"]["status"] == "OK", rows
    assert by_check["settings"]["detail"] == "complete for Socket Mode (SLACK_APP_TOKEN)"
    assert by_check["policy"] == {
        "check": "policy",
        "status": "OK",
        "detail": "policy.yml: 3 system(s), 5 role(s)",
    }
    assert by_check["slack auth.test"]["status"] == "OK", rows
    assert by_check["pagerduty"]["status"] == "OK", rows
    problems = [row for row in rows if row["status"] == "PROBLEM"]
    # what is left is reaching things: the made-up systems, a channel the bot is not in
    assert all(row["check"].startswith(("slack ", "provider ")) for row in problems), problems
    assert not [row for row in rows if "is not set" in row["detail"]], rows
    assert not [row for row in rows if re.search(r"policy\.yml:\d+", row["detail"])], rows
    providers = {row["check"] for row in rows if row["check"].startswith("provider ")}
    assert providers == {
        "provider checkout-db (postgres)",
        "provider billing-admin (webhook)",
        "provider checkout-staging (postgres)",
    }
