"""The bot with incident-bound access: the tests' policy (orders-api) with five tracker rules,
each tracker a fake over real HTTP (tests/fakes/trackers.py):

- `PAY-…` → Jira, with `end_access_on_resolve: true` (an issue tracker, told to);
- `DOC-…` → Jira, as it comes (issue trackers do not end access);
- `PD-…` → PagerDuty incidents (incident trackers end access by default);
- `PDX-…` → PagerDuty incidents with `end_access_on_resolve: false`;
- `INC-…` → incident.io (takes no comments).

The webhook secrets are set: PagerDuty's as the service hands it out, incident.io's as a
`whsec_` secret."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from app.models import AuditEvent
from tests.conftest import BotHarness, eventually, make_settings, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.trackers import FakeIncidentIo, FakeJira, FakePagerDutyIncidents
from tests.fakes.webhook_receiver import WebhookReceiver

JIRA_TOKEN = "jira-token-5c4b3a2f1e"
PD_TOKEN = "pd-token-0a9b8c7d6e"
INCIDENT_IO_TOKEN = "inc-key-7f6e5d4c3b"
BOT_ACCOUNT = "prod-access-bot@example.com"
PD_WEBHOOK_SECRET = "pd-webhook-secret-3e2d1c0b9a8f"
INCIDENT_IO_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class IncidentBot:
    bot: BotHarness
    jira: FakeJira
    pagerduty: FakePagerDutyIncidents
    incident_io: FakeIncidentIo

    def webhook_url(self, service: str) -> str:
        return self.bot.url.replace("/slack/events", f"/webhooks/{service}")

    def events(self, name: str) -> list[AuditEvent]:
        with self.bot.ctx.db() as db:
            return list(
                db.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by("seq"))
            )

    def dm_texts(self, user: str) -> list[str]:
        """Everything the bot said to `user` in DMs, blocks and text, in order."""
        return [
            json.dumps(call.get("blocks")) + call.get("text", "")
            for call in self.bot.slack.calls_to("chat.postMessage")
            if call.get("channel") == user
        ]


def incident_bot(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str | None = None,
    extra_settings: dict[str, object] | None = None,
    extra_roles: str = "",
) -> Iterator[IncidentBot]:
    """The bot (see the module docstring); `extra_roles`: more roles of orders-api, as YAML
    list items indented by six spaces."""
    monkeypatch.setenv("TEST_JIRA_TOKEN", JIRA_TOKEN)
    monkeypatch.setenv("TEST_PD_TOKEN", PD_TOKEN)
    monkeypatch.setenv("TEST_INCIDENT_IO_TOKEN", INCIDENT_IO_TOKEN)
    with (
        FakeJira(JIRA_TOKEN, email=BOT_ACCOUNT) as jira,
        FakePagerDutyIncidents(PD_TOKEN) as pd,
        FakeIncidentIo(INCIDENT_IO_TOKEN) as inc,
    ):
        jira_config = f"{{url: '{jira.url}', email: {BOT_ACCOUNT}, token_env: TEST_JIRA_TOKEN}}"
        pd_config = f"{{api_url: '{pd.url}', token_env: TEST_PD_TOKEN, from_email: {BOT_ACCOUNT}}}"
        rules = (
            "    trackers:\n"
            f"      - {{type: jira, pattern: '^PAY-', end_access_on_resolve: true,"
            f" config: {jira_config}}}\n"
            f"      - {{type: jira, pattern: '^DOC-', config: {jira_config}}}\n"
            f"      - {{type: pagerduty_incidents, pattern: '^PD-', config: {pd_config}}}\n"
            f"      - {{type: pagerduty_incidents, pattern: '^PDX-',"
            f" end_access_on_resolve: false, config: {pd_config}}}\n"
            f"      - {{type: incident_io, pattern: '^INC-', comment: false,"
            f" config: {{api_url: '{inc.url}', token_env: TEST_INCIDENT_IO_TOKEN}}}}\n"
        )
        policy = write_policy(tmp_path / "policy.yml", webhook.url)
        text = policy.read_text().replace("    roles:\n", rules + "    roles:\n", 1)
        policy.write_text(text + extra_roles)  # orders-api's roles end the file
        settings = make_settings(tmp_path, slack, policy, database_url).model_copy(
            update={
                "tracker_lookup_seconds": 1.0,
                "pagerduty_webhook_secret": SecretStr(PD_WEBHOOK_SECRET),
                "incident_io_webhook_secret": SecretStr(INCIDENT_IO_WEBHOOK_SECRET),
                **(extra_settings or {}),
            }
        )
        harness = BotHarness(settings, slack)
        try:
            yield IncidentBot(harness, jira, pd, inc)
        finally:
            harness.stop()


def ended_dm(ib: IncidentBot, user: str, session_id: str) -> str:
    """The closeout prompt of that session, as the person got it."""
    texts = eventually(
        lambda: [t for t in ib.dm_texts(user) if "open_closeout" in t and session_id in t],
        what=f"the closeout prompt of {session_id}",
    )
    return re.sub(r"\s+", " ", texts[-1])
