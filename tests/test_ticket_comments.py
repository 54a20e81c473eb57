"""The ticket hears about the access: a comment on the grant, on the end and with the closeout
note, each posted once, through the real bot and a fake Jira over HTTP (tests/tracker_bot.py).
A tracker outage delays the comments, never Slack's notices; they are retried with the outbox's
backoff, posted once after recovery, and the failure is said once in the card's thread."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app import clock
from app.jobs.notices import resend_pending_notices
from app.models import AuditEvent, PendingNotice, SessionState
from app.trackers.comments import TicketEvent
from tests.conftest import BOB, WEBHOOK_SECRET, eventually
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import text_input
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.tracker_bot import JIRA_TOKEN, TrackerBot, tracker_bot

QUICK = "orders-api write 30m PAY-184 restart the worker"


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


@pytest.fixture
def tb(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TrackerBot]:
    yield from tracker_bot(tmp_path, slack, webhook, monkeypatch)


def _events(tb: TrackerBot, name: str) -> list[dict]:
    with tb.bot.ctx.db() as db:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.seq)
        )
        return [row.detail for row in rows]


def _kept(tb: TrackerBot) -> list[str]:
    """The lines of the notices the outbox keeps to send again."""
    with tb.bot.ctx.db() as db:
        return [row.request_id for row in db.scalars(select(PendingNotice))]


def _write_closeout(tb: TrackerBot, session_id: str, changes: str) -> None:
    assert tb.bot.send.click("open_closeout", session_id, BOB, channel="D0BOB").status == 200
    modal = tb.bot.slack.wait_for(
        "views.open", lambda a: a["view"].get("callback_id") == "closeout"
    )
    values = {
        "changes": text_input(changes, "changes_input"),
        "followups": text_input("", "followups_input"),
    }
    assert tb.bot.send.submit(modal[-1]["view"], values, BOB).status == 200


def test_grant_end_and_closeout_are_commented_on_the_ticket_once_each(
    tb_both: TrackerBot,
) -> None:
    tb = tb_both
    tb.jira.add_issue("PAY-184", "Worker leaks", assignee=("Bob B", "bob@example.com"))
    session = tb.bot.granted(QUICK)
    granted = eventually(lambda: tb.jira.commented("PAY-184"), what="the grant's comment")
    assert len(granted) == 1
    text = granted[0]
    assert "Access granted to bob@example.com: write on Orders API (orders-api) as " in text
    assert "bob@example.com" in text and "Window: " in text and "(30m)" in text
    assert "Approved by lead1@example.com." in text

    assert tb.bot.send.command("done", BOB).status == 200
    tb.bot.wait_session(session.request_id, SessionState.ended)
    eventually(lambda: len(tb.jira.commented("PAY-184")) == 2, what="the end's comment")
    assert "ended early by the requester" in tb.jira.commented("PAY-184")[1]

    _write_closeout(tb, session.id, "restarted payment-worker-2")
    eventually(lambda: len(tb.jira.commented("PAY-184")) == 3, what="the closeout's comment")
    assert "What changed: restarted payment-worker-2" in tb.jira.commented("PAY-184")[2]

    # delivered again (at least once), posted once
    for event in TicketEvent:
        tb.bot.ctx.notify.ticket_comment(session, event)
    assert len(tb.jira.commented("PAY-184")) == 3
    assert [e["on"] for e in _events(tb, "ticket_commented")] == ["granted", "ended", "closeout"]
    for comment in tb.jira.commented("PAY-184"):
        assert JIRA_TOKEN not in comment and WEBHOOK_SECRET not in comment


def test_a_tracker_outage_delays_comments_which_are_posted_once_after_recovery(
    tb: TrackerBot,
) -> None:
    tb.jira.add_issue("PAY-184", "Worker leaks")
    request_id = tb.bot.quick_request(QUICK, BOB)
    tb.jira.script.fail(503, times=2)  # the grant's comment fails, and its first retry
    assert tb.bot.send.click("approve_request", request_id, "U0LEAD1").status == 200
    session = tb.bot.wait_session(request_id, SessionState.active)
    failure = tb.bot.slack.wait_for(
        "chat.postMessage", lambda a: a.get("thread_ts") and "could not be posted" in a["text"]
    )[0]["text"]
    assert "The grant comment on PAY-184 could not be posted: Jira answered HTTP 503" in failure
    assert "It is retried until it goes through; nothing is lost." in failure
    assert eventually(lambda: _kept(tb)) == [f"{request_id}/T"]  # its own line, not Slack's

    # Slack is not held up behind the waiting comment: the end is told at once
    assert tb.bot.send.command("done", BOB).status == 200
    tb.bot.slack.wait_for(
        "chat.postMessage", lambda a: a.get("thread_ts") and "Access ended" in a["text"]
    )
    assert tb.jira.commented("PAY-184") == []
    assert eventually(lambda: len(_kept(tb)) == 2)  # the end's comment waits behind the grant's

    clock.travel(timedelta(minutes=2))
    assert resend_pending_notices(tb.bot.ctx).failed  # the second 503: kept, not shown again
    clock.travel(timedelta(minutes=5))
    assert len(resend_pending_notices(tb.bot.ctx).sent) == 2
    comments = tb.jira.commented("PAY-184")
    assert len(comments) == 2
    assert "Access granted to bob@example.com" in comments[0]
    assert "Access ended for bob@example.com" in comments[1]
    assert session.id in comments[1]

    shown = [
        call
        for call in tb.bot.slack.calls_to("chat.postMessage")
        if "could not be posted" in call.get("text", "")
    ]
    assert len(shown) == 1
    assert [e["retrying"] for e in _events(tb, "ticket_comment_failed")] == [True]
    assert [e["attempts"] for e in _events(tb, "ticket_commented")] == [3, 1]
