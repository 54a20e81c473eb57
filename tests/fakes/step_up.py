"""The bot with step-up approvals against the local OpenID provider: the policy (orders-api's
`write` needs step-up and two approvals, `read` is plain; break-glass asks for step-up; lead2
is known by `oidc_subject`), the settings, and a browser that follows redirects over plain HTTP
(requests: cookies kept, no JavaScript)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import select

from app.db import transaction
from app.models import Approval, AuditEvent
from app.oidc import oidc_from_settings
from tests.conftest import BOB, LEAD1, LEAD2, BotHarness, make_settings, write_policy
from tests.fakes.oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver


def write_step_up_policy(path: Path, webhook_url: str) -> Path:
    write_policy(path, webhook_url)
    text = path.read_text()
    text = text.replace(
        "- {id: write, grant: orders-admin, max_duration: 2h}",
        "- {id: write, grant: orders-admin, max_duration: 2h, step_up: true, "
        "approvals_required: 2}",
    ).replace("    roles:\n", f"    breakglass: {{users: [{BOB}], step_up: true}}\n    roles:\n")
    path.write_text(text + f"users:\n  {LEAD2}: {{oidc_subject: sub-lead2}}\n")
    return path


def step_up_env(issuer: str, public_url: str) -> dict[str, str]:
    return {
        "PUBLIC_URL": public_url,
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
    }


class StepUpBot:
    """A BotHarness whose PUBLIC_URL is its own address, the provider, and a browser."""

    def __init__(self, harness: BotHarness, idp: FakeOidcProvider) -> None:
        self.bot, self.idp = harness, idp
        self.public_url = harness.url.removesuffix("/slack/events")
        settings = harness.ctx.settings
        settings.public_url = self.public_url
        settings.oidc_issuer, settings.oidc_client_id = idp.issuer, CLIENT_ID
        settings.oidc_client_secret = SecretStr(CLIENT_SECRET)
        settings.register_secrets()
        harness.ctx.oidc = oidc_from_settings(settings)
        self.browser = requests.Session()

    def click_approve(self, request_id: str, user: str) -> str:
        """Click Approve as `user`; the link of the "Confirm with …" answer they alone get."""

        def mine(args: dict) -> bool:
            return args.get("user") == user and "step_up_open" in json.dumps(args.get("blocks"))

        before = len([a for a in self.bot.slack.calls_to("chat.postEphemeral") if mine(a)])
        assert self.bot.send.click("approve_request", request_id, user).status == 200
        said = self.bot.slack.wait_for("chat.postEphemeral", mine, count=before + 1)[-1]
        assert said["text"].startswith("Confirm your approval of")
        return link_in(said["blocks"])

    def open(self, url: str, browser: requests.Session | None = None) -> requests.Response:
        """Follow the link and every redirect, as a browser would."""
        return (browser or self.browser).get(url, timeout=30)

    def approvals(self, request_id: str) -> list[str]:
        with transaction(self.bot.ctx.db) as db:
            return list(
                db.scalars(select(Approval.approver_id).where(Approval.request_id == request_id))
            )

    def events(self, name: str) -> list[AuditEvent]:
        with transaction(self.bot.ctx.db) as db:
            rows = db.scalars(select(AuditEvent).where(AuditEvent.event == name)).all()
            db.expunge_all()
            return list(rows)

    def failures(self) -> list[str]:
        return [event.detail["reason"] for event in self.events("step_up_failed")]


def link_in(blocks: Any) -> str:
    """The URL of the step-up link button in a message's blocks."""
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == "step_up_open":
                return str(element["url"])
    raise AssertionError(f"no step-up link in {blocks!r}")


def step_up_bot(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    database_url: str | None = None,
) -> Iterator[StepUpBot]:
    policy = write_step_up_policy(tmp_path / "policy.yml", webhook.url)
    with FakeOidcProvider() as idp:
        harness = BotHarness(make_settings(tmp_path, slack, policy, database_url), slack)
        try:
            yield StepUpBot(harness, idp)
        finally:
            harness.stop()


@pytest.fixture
def stepped(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> Iterator[StepUpBot]:
    """Step-up on SQLite (the refusals: each is one process's logic)."""
    yield from step_up_bot(tmp_path, slack, webhook)


__all__ = ["BOB", "LEAD1", "LEAD2", "StepUpBot", "link_in", "step_up_env", "stepped"]
