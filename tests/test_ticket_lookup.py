"""The ticket is looked up before anyone is asked to approve, through the real bot (signed Slack
requests, the fake Slack server) and fake trackers over HTTP (tests/tracker_bot.py): a made-up,
closed or someone else's ticket is refused with the reason and nothing is posted; a tracker
that cannot answer lets the request through, marked "⚠ ticket not verified" on the card and in
the audit trail; a verified ticket shows its title, status and assignee with a link."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import AccessRequest, AuditEvent
from tests.conftest import ALICE, BOB
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import select as chosen
from tests.fakes.slack_requests import text_input
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.tracker_bot import TrackerBot, tracker_bot


@pytest.fixture
def tb(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TrackerBot]:
    yield from tracker_bot(tmp_path, slack, webhook, monkeypatch)


@pytest.fixture(params=["sqlite", "postgres"])
def tb_both(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TrackerBot]:
    database_url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    yield from tracker_bot(tmp_path, slack, webhook, monkeypatch, database_url)


def _requests(tb: TrackerBot) -> list[AccessRequest]:
    with tb.bot.ctx.db() as db:
        return list(db.scalars(select(AccessRequest)))


def _card(tb: TrackerBot) -> str:
    """The approval card's blocks as posted, as one JSON text."""
    cards = tb.bot.slack.calls_to("chat.postMessage")
    card = next(c for c in cards if "approve_request" in str(c.get("blocks")))
    return json.dumps(card["blocks"], ensure_ascii=False)


def _requested_event(tb: TrackerBot, request_id: str) -> dict:
    with tb.bot.ctx.db() as db:
        event = db.scalars(
            select(AuditEvent).where(
                AuditEvent.request_id == request_id, AuditEvent.event == "requested"
            )
        ).one()
        return event.detail


def _modal_values(ticket: str) -> dict:
    return {
        "system": chosen("orders-api", "system_select"),
        "role:orders-api": chosen("write", "role_select"),
        "duration:orders-api:write": chosen("30m", "duration_select"),
        "ticket": text_input(ticket, "ticket_input"),
        "reason": text_input("restart the worker", "reason_input"),
    }


def test_a_made_up_ticket_is_refused_in_the_quick_forms_reply_and_nothing_is_posted(
    tb: TrackerBot,
) -> None:
    answer = tb.bot.send.command("orders-api write 30m PAY-999 restart the worker", BOB)
    assert answer.status == 200
    assert "PAY-999 was not found in Jira" in answer.text
    assert _requests(tb) == []
    assert tb.bot.slack.calls_to("chat.postMessage") == []


def test_a_made_up_ticket_is_refused_inline_in_the_modal_and_nothing_is_posted(
    tb: TrackerBot,
) -> None:
    view = {"type": "modal", "callback_id": "request_access", "id": "V1", "blocks": []}
    body = tb.bot.send.submit(view, _modal_values("PAY-999"), BOB).json()
    assert body["response_action"] == "errors"
    assert body["errors"] == {
        "ticket": "PAY-999 was not found in Jira (or the bot may not see it)."
    }
    assert _requests(tb) == []
    assert tb.bot.slack.calls_to("chat.postMessage") == []


def test_a_closed_ticket_is_refused(tb: TrackerBot) -> None:
    tb.jira.add_issue("PAY-2", "Shipped last week", status="Done", category="done")
    answer = tb.bot.send.command("orders-api write 30m PAY-2 restart the worker", BOB)
    assert (
        "PAY-2 is closed in Jira (status: Done); access needs an open ticket or incident."
        in answer.text
    )
    tb.pagerduty.add_incident("Q9", 9, "Resolved yesterday", status="resolved")
    answer = tb.bot.send.command("orders-api write 30m PD-9 restart the worker", BOB)
    assert "PD-9 is resolved in PagerDuty (status: resolved)" in answer.text
    assert _requests(tb) == [] and tb.bot.slack.calls_to("chat.postMessage") == []


def test_a_ticket_assigned_to_someone_else_is_refused_when_the_rule_requires_the_requester(
    tb: TrackerBot,
) -> None:
    tb.jira.add_issue("OPS-5", "Rotate keys", assignee=("Alice A", "alice@example.com"))
    view = {"type": "modal", "callback_id": "request_access", "id": "V1", "blocks": []}
    body = tb.bot.send.submit(view, _modal_values("OPS-5"), BOB).json()
    assert body["errors"]["ticket"] == (
        "OPS-5 is assigned to Alice A, not to you (bob@example.com); only its assignee may ask "
        "for access with it."
    )
    assert _requests(tb) == [] and tb.bot.slack.calls_to("chat.postMessage") == []
    # the assignee herself may
    assert tb.bot.send.submit(view, _modal_values("OPS-5"), ALICE).text == ""
    assert [r.requester_id for r in _requests(tb)] == [ALICE]


def test_an_unreachable_tracker_posts_the_card_with_the_not_verified_line_and_audits_it(
    tb: TrackerBot,
) -> None:
    tb.jira.script.fail(503)
    request_id = tb.bot.quick_request("orders-api write 30m PAY-184 restart the worker", BOB)
    card = _card(tb)
    assert "⚠ ticket not verified: Jira answered HTTP 503" in card
    row = tb.bot.request(request_id)
    assert (row.ticket_tracker, row.ticket_verified) == ("jira", False)
    detail = _requested_event(tb, request_id)
    assert detail["ticket_verified"] is False
    assert detail["ticket_not_verified"].startswith("Jira answered HTTP 503")


def test_a_hanging_tracker_is_given_up_on_within_the_ack_and_the_card_says_so(
    tb: TrackerBot,
) -> None:
    tb.jira.script.hang(3.0)
    started = time.monotonic()
    answer = tb.bot.send.command("orders-api write 30m PAY-184 restart the worker", BOB)
    assert answer.status == 200 and time.monotonic() - started < 2.5  # Slack waits 3 s
    tb.bot.slack.wait_for("chat.postMessage", lambda a: "approve_request" in str(a.get("blocks")))
    assert "⚠ ticket not verified: Jira did not answer within 1s" in _card(tb)


def test_the_card_shows_the_tickets_title_status_and_assignee_with_a_link(
    tb_both: TrackerBot,
) -> None:
    tb = tb_both
    tb.jira.add_issue(
        "PAY-184", "Worker leaks <!channel> & more", assignee=("Bob B", "bob@example.com")
    )
    request_id = tb.bot.quick_request("orders-api write 30m PAY-184 restart the worker", BOB)
    card = _card(tb)
    assert f"<{tb.jira.url}/browse/PAY-184|PAY-184>" in card
    assert (
        ":ticket: *Worker leaks &lt;!channel&gt; &amp; more* · In Progress · assigned to Bob B"
        in (card)
    )
    assert "not verified" not in card
    row = tb.bot.request(request_id)
    assert (row.ticket_verified, row.ticket_title, row.ticket_status) == (
        True,
        "Worker leaks <!channel> & more",
        "In Progress",
    )
    assert _requested_event(tb, request_id)["ticket_verified"] is True
