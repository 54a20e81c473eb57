"""The bot with ticket trackers: the tests' policy (orders-api) with three rules, each tracker
a fake over real HTTP (tests/fakes/trackers.py):

- `PAY-…` → Jira (Cloud, basic auth), open tickets only;
- `OPS-…` → Jira too, and the ticket must be assigned to the requester;
- `PD-…` → PagerDuty incidents.

TRACKER_LOOKUP_SECONDS is 1 here, so a hanging tracker costs a test one second."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BotHarness, make_settings, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.trackers import FakeJira, FakePagerDutyIncidents
from tests.fakes.webhook_receiver import WebhookReceiver

JIRA_TOKEN = "jira-token-5c4b3a2f1e"
PD_TOKEN = "pd-token-0a9b8c7d6e"
BOT_ACCOUNT = "prod-access-bot@example.com"


@dataclass
class TrackerBot:
    bot: BotHarness
    jira: FakeJira
    pagerduty: FakePagerDutyIncidents


def tracker_bot(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str | None = None,
) -> Iterator[TrackerBot]:
    monkeypatch.setenv("TEST_JIRA_TOKEN", JIRA_TOKEN)
    monkeypatch.setenv("TEST_PD_TOKEN", PD_TOKEN)
    monkeypatch.setenv("TRACKER_LOOKUP_SECONDS", "1")
    with FakeJira(JIRA_TOKEN, email=BOT_ACCOUNT) as jira, FakePagerDutyIncidents(PD_TOKEN) as pd:
        jira_config = f"{{url: '{jira.url}', email: {BOT_ACCOUNT}, token_env: TEST_JIRA_TOKEN}}"
        rules = (
            "    trackers:\n"
            f"      - {{type: jira, pattern: '^PAY-', config: {jira_config}}}\n"
            f"      - {{type: jira, pattern: '^OPS-', require_assignee_is_requester: true,"
            f" config: {jira_config}}}\n"
            f"      - {{type: pagerduty_incidents, pattern: '^PD-', config: {{api_url: '{pd.url}',"
            f" token_env: TEST_PD_TOKEN, from_email: {BOT_ACCOUNT}}}}}\n"
        )
        policy = write_policy(tmp_path / "policy.yml", webhook.url)
        policy.write_text(policy.read_text().replace("    roles:\n", rules + "    roles:\n", 1))
        harness = BotHarness(make_settings(tmp_path, slack, policy, database_url), slack)
        try:
            yield TrackerBot(harness, jira, pd)
        finally:
            harness.stop()
