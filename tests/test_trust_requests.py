"""No path to unearned access through a request: identities only from trusted email domains
and shown on the card; a failed grant retried only soon after its approval and only while the
policy still allows it; approvals and requesters judged by the policy in force at each decision.

Each test runs the real bot over signed HTTP against the fake Slack Web API and a real webhook
target; a policy change is a restart of the bot with the new file on the same database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import clock
from app.db import transaction
from app.models import AccessRequest, AuditEvent, RequestState, SessionState
from app.policy import PolicyError, load_policy
from tests.blocks_helpers import message_texts, offers
from tests.conftest import ALICE, BOB, LEAD1, LEAD2, BotHarness, eventually, make_settings
from tests.fakes.policy import write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import select as chosen
from tests.fakes.slack_requests import text_input
from tests.fakes.webhook_receiver import WebhookReceiver

EVE = "U0EVE"


def payments(url: str, approvers: str, requesters: str = "", required: int = 1) -> str:
    """A second webhook system, its approvers and requesters as the test needs them."""
    lines = [
        "  - id: payments",
        "    name: Payments",
        "    provider: webhook",
        f"    config: {{url: '{url}', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}",
        "    identity: '{email}'",
        f"    approvers: [{approvers}]",
        *([f"    requesters: [{requesters}]"] if requesters else []),
        "    breakglass: {users: [U0BOB]}",
        "    roles:",
        f"      - {{id: write, grant: payments-admin, approvals_required: {required}}}",
    ]
    return "\n".join(lines) + "\n"


class Deployment:
    """The bot on one SQLite database; `restart(policy)` stops it and starts it again with a
    new policy file, as an operator deploying a policy change would."""

    def __init__(self, tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> None:
        self.tmp_path, self.slack, self.webhook = tmp_path, slack, webhook
        self.bot: BotHarness | None = None

    def start(self, systems: str) -> BotHarness:
        if self.bot is not None:
            self.bot.stop()
        policy = write_policy(self.tmp_path / "policy.yml", self.webhook.url, systems)
        self.bot = BotHarness(make_settings(self.tmp_path, self.slack, policy), self.slack)
        return self.bot


@pytest.fixture
def deploy(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path, slack, webhook)
    yield deployment
    if deployment.bot is not None:
        deployment.bot.stop()


def _blocks(args: dict) -> str:
    """A message's texts (blocks, then the fallback text), one per line."""
    return "\n".join(message_texts(args))


def _refusal(slack: FakeSlack, user: str, needle: str) -> str:
    """The ephemeral message a refused click got."""
    return slack.wait_for(
        "chat.postEphemeral", lambda a: a.get("user") == user and needle in a.get("text", "")
    )[-1]["text"]


def _requests(bot: BotHarness) -> int:
    with transaction(bot.ctx.db) as db:
        return db.scalar(select(func.count()).select_from(AccessRequest)) or 0


def _events(bot: BotHarness, request_id: str) -> list[str]:
    with transaction(bot.ctx.db) as db:
        rows = db.scalars(select(AuditEvent.event).where(AuditEvent.request_id == request_id))
        return list(rows)


# --- identity from email ---------------------------------------------------------------------


def test_identity_from_an_email_outside_email_domains_is_refused_before_any_approver(
    sqlite_bot: BotHarness, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(slack.users, EVE, {"email": "lead1@evil.test", "name": "eve"})
    answer = sqlite_bot.send.command("orders-api read 30m PAY-1 look at orders", EVE)
    assert answer.status == 200
    assert "lead1@evil.test" in answer.text and "example.com" in answer.text, answer.text
    assert "not in a domain orders-api accepts" in answer.text
    assert _requests(sqlite_bot) == 0
    assert slack.calls_to("chat.postMessage") == []  # no approver saw anything


def test_identity_outside_email_domains_is_an_inline_error_in_the_modal(
    sqlite_bot: BotHarness, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(slack.users, EVE, {"email": "eve@vendor.test", "name": "eve"})
    view = {"type": "modal", "callback_id": "request_access", "id": "V1", "blocks": []}
    values = {
        "system": chosen("orders-api", "system_select"),
        "role:orders-api": chosen("read", "role_select"),
        "duration:orders-api:read": chosen("30m", "duration_select"),
        "ticket": text_input("PAY-1", "ticket_input"),
        "reason": text_input("look at orders", "reason_input"),
    }
    body = sqlite_bot.send.submit(view, values, EVE).json()
    assert body["response_action"] == "errors"
    assert "eve@vendor.test" in body["errors"]["system"]
    assert _requests(sqlite_bot) == 0


def test_policy_deriving_identities_from_email_without_email_domains_fails_at_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.yml"
    write_policy(path, "http://127.0.0.1:9/hook")
    path.write_text(path.read_text().replace("  email_domains: [example.com]\n", ""))
    with pytest.raises(PolicyError) as failure:
        load_policy(path)
    message = str(failure.value)
    assert message.startswith(f"{path}:")
    line = int(message.split(":")[1])
    assert "identity: '{email}'" in path.read_text().splitlines()[line - 1]
    assert "systems[0].identity" in message and "email_domains" in message


def test_card_shows_the_exact_identity_and_grant_being_approved(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    request_id = sqlite_bot.quick_request("orders-api read 30m PAY-1 look at orders", BOB)
    card = sqlite_bot.slack.wait_for("chat.postMessage", lambda a: request_id in _blocks(a))[0]
    assert "Grants `orders-viewer` to `bob@example.com` on `orders-api`" in _blocks(card)
    sqlite_bot.send.click("approve_request", request_id, LEAD1)
    sqlite_bot.wait_session(request_id, SessionState.active)
    grant = webhook.wait_for(1, action="grant")[0].body
    assert (grant["user"]["identity"], grant["grant"]) == ("bob@example.com", "orders-viewer")


# --- retry grant -----------------------------------------------------------------------------


def _failed_grant(bot: BotHarness, webhook: WebhookReceiver, text: str) -> str:
    """A request approved whose grant the target refused (HTTP 403): the session id."""
    webhook.respond_with(403)
    request_id = bot.quick_request(text, BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    return bot.wait_session(request_id, SessionState.grant_failed).id


def test_retry_grant_is_refused_after_retry_within_of_the_approval(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session_id = _failed_grant(sqlite_bot, webhook, "orders-api read 30m PAY-1 look")
    grants = len(webhook.wait_for(1, action="grant"))
    clock.travel(timedelta(minutes=15, seconds=5))
    sqlite_bot.send.click("retry_grant", session_id, BOB)
    text = _refusal(sqlite_bot.slack, BOB, "Ask for the access again")
    assert "within 15m of its approval" in text
    assert len([r for r in webhook.requests if r.body.get("action") == "grant"]) == grants
    with transaction(sqlite_bot.ctx.db) as db:
        from app.models import AccessSession

        assert db.get(AccessSession, session_id).state == SessionState.grant_failed


def test_retry_grant_within_the_window_grants(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session_id = _failed_grant(sqlite_bot, webhook, "orders-api read 30m PAY-1 look")
    clock.travel(timedelta(minutes=14))
    sqlite_bot.send.click("retry_grant", session_id, BOB)
    eventually(lambda: ("bob@example.com", "orders-viewer") in webhook.held(), what="grant")


def test_retry_grant_rechecks_the_requester_against_the_policy_now(
    deploy: Deployment, webhook: WebhookReceiver
) -> None:
    bot = deploy.start(payments(webhook.url, "U0LEAD1", requesters="U0BOB"))
    webhook.respond_with(403)
    request_id = bot.quick_request("payments write 30m PAY-1 fix", BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    session_id = bot.wait_session(request_id, SessionState.grant_failed).id
    bot = deploy.start(payments(webhook.url, "U0LEAD1", requesters="U0ALICE"))
    bot.send.click("retry_grant", session_id, LEAD1)
    assert "no longer on the list" in _refusal(bot.slack, LEAD1, "no longer")
    assert ("bob@example.com", "payments-admin") not in webhook.held()


def test_flagged_breakglass_grant_is_never_retried(
    deploy: Deployment, webhook: WebhookReceiver
) -> None:
    bot = deploy.start(payments(webhook.url, "U0LEAD1"))
    webhook.respond_with(403)
    bot.send.command("--breakglass payments write 30m INC-7 site down", BOB)
    request_id = eventually(lambda: _requests(bot) and bot.latest_request_id(), what="request")
    session_id = bot.wait_session(request_id, SessionState.grant_failed).id
    bot.send.click("breakglass_flag", request_id, LEAD1)
    eventually(lambda: bot.request(request_id).review_state == "flagged", what="flagged")
    card = bot.slack.wait_for("chat.update", lambda a: "Flagged" in _blocks(a))[-1]
    assert not offers(card["blocks"], "retry_grant")
    bot.send.click("retry_grant", session_id, BOB)
    assert "flagged" in _refusal(bot.slack, BOB, "not granted again")
    assert webhook.held() == set()


# --- the policy in force at each decision ----------------------------------------------------


def test_approvals_from_people_no_longer_approvers_do_not_count(
    deploy: Deployment, webhook: WebhookReceiver
) -> None:
    bot = deploy.start(payments(webhook.url, "U0LEAD1, U0LEAD2, U0ALICE", required=2))
    request_id = bot.quick_request("payments write 30m PAY-1 fix", BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    eventually(lambda: len(bot.request(request_id).approved_by) == 1, what="1 approval")
    bot = deploy.start(payments(webhook.url, "U0LEAD2, U0ALICE", required=2))
    bot.send.click("approve_request", request_id, LEAD2)
    eventually(lambda: len(bot.request(request_id).approved_by) == 2, what="2nd approval")
    assert bot.request(request_id).state == RequestState.pending  # LEAD1's no longer counts
    assert bot.session_for(request_id) is None
    bot.send.click("approve_request", request_id, ALICE)
    bot.wait_session(request_id, SessionState.active)
    with transaction(bot.ctx.db) as db:
        approved = db.scalars(
            select(AuditEvent).where(
                AuditEvent.request_id == request_id, AuditEvent.event == "approved"
            )
        ).one()
        assert approved.detail["approvers"] == [LEAD2, ALICE]
        assert approved.detail["not_counted"] == [LEAD1]


def test_requester_removed_from_requesters_cannot_be_approved_or_extended(
    deploy: Deployment, webhook: WebhookReceiver
) -> None:
    bot = deploy.start(payments(webhook.url, "U0LEAD1", requesters="U0BOB, U0ALICE"))
    pending = bot.quick_request("payments write 30m PAY-1 fix", BOB)
    active = bot.granted("payments write 30m PAY-2 fix", BOB)
    bot = deploy.start(payments(webhook.url, "U0LEAD1", requesters="U0ALICE"))
    bot.send.click("approve_request", pending, LEAD1)
    assert "no longer on the list" in _refusal(bot.slack, LEAD1, "no longer")
    assert bot.request(pending).state == RequestState.pending
    assert bot.session_for(pending) is None

    bot.send.click("extend_session", active.id, BOB, channel="D0BOB")
    modal = bot.slack.wait_for("views.open", lambda a: a["view"].get("callback_id") == "extend")
    values = {
        "duration": text_input("30m", "duration_input"),
        "reason": text_input("more", "reason_input"),
    }
    body = bot.send.submit(modal[-1]["view"], values, BOB).json()
    assert body["response_action"] == "errors"
    assert any("no longer on the list" in error for error in body["errors"].values())
    assert "extension_requested" not in _events(bot, active.request_id)
