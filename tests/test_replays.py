"""A signed Slack request sent again byte for byte is refused (401) and does nothing; an Events
API retry (same event_id, signed anew) is answered 200 and not handled again; what was seen is
forgotten after ten minutes. Real signed HTTP to the bot, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import structlog
from sqlalchemy import func, select
from structlog.testing import capture_logs

from app import clock
from app.db import reading
from app.models import AccessRequest, Approval, SeenSlackRequest, SessionState
from app.slack.replays import forget_old_slack_requests
from tests.blocks_helpers import offers
from tests.conftest import BOB, LEAD1, SIGNING_SECRET, BotHarness, eventually
from tests.fakes.webhook_receiver import WebhookReceiver

SETTLE = 0.5  # long enough for work after an ack to show in the fake Slack, were there any


def _count(bot: BotHarness, model: type) -> int:
    with reading(bot.ctx.db) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _cards(bot: BotHarness) -> list[dict]:
    return [
        call
        for call in bot.slack.calls_to("chat.postMessage")
        if offers(call.get("blocks"), "approve_request")
    ]


def test_a_replayed_quick_request_is_refused_and_makes_no_second_request(bot: BotHarness) -> None:
    request_id = bot.quick_request("orders-api read 15m PAY-1 check logs", BOB)
    sent = bot.send.last
    assert sent is not None

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        answer = bot.send.replay(sent)

    assert answer.status == 401 and answer.json() == {"error": "replayed request"}
    time.sleep(SETTLE)
    assert _count(bot, AccessRequest) == 1 and bot.latest_request_id() == request_id
    assert len(_cards(bot)) == 1
    replayed = [e for e in logs if e["event"] == "slack_request_replayed"]
    assert len(replayed) == 1, logs
    line = replayed[0]
    assert line["log_level"] == "warning"
    assert line["slack_action"] == "/prod-access" and line["user_id"] == BOB
    assert SIGNING_SECRET not in str(logs)
    assert sent.headers["X-Slack-Signature"] not in str(logs)


def test_a_replayed_approve_is_refused_and_grants_once(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    request_id = bot.quick_request("orders-api read 15m PAY-2 check logs", BOB)
    assert bot.send.click("approve_request", request_id, LEAD1).status == 200
    click = bot.send.last
    assert click is not None
    bot.wait_session(request_id, SessionState.active)

    assert bot.send.replay(click).status == 401

    time.sleep(SETTLE)
    assert len(webhook.actions()) == 1 and webhook.actions()[0] == "grant"
    assert bot.request(request_id).approved_by == [LEAD1]
    assert _count(bot, Approval) == 1


def test_a_retried_event_is_answered_and_handled_once(bot: BotHarness) -> None:
    opened = {"type": "app_home_opened", "user": BOB, "channel": "D0BOB", "tab": "home"}
    assert bot.send.interaction_event(opened).status == 200
    first = bot.send.last
    assert first is not None
    bot.slack.wait_for("views.publish", lambda a: a["user_id"] == BOB)

    with capture_logs() as logs:
        retry = bot.send.retry(first, 1)

    assert (retry.status, retry.text) == (200, "")
    time.sleep(SETTLE)
    assert len(bot.slack.calls_to("views.publish")) == 1
    repeated = [e for e in logs if e["event"] == "slack_event_repeated"]
    event_id = json.loads(first.body)["event_id"]
    assert [(e["event_id"], e["retry_num"]) for e in repeated] == [(event_id, "1")]
    assert bot.send.replay(first).status == 401  # the same bytes again: a replay, not a retry


def test_badly_signed_and_stale_requests_leave_no_trace(bot: BotHarness) -> None:
    body = bot.send.command_body("help", BOB)
    stale = int(time.time()) - 6 * 60
    assert bot.send.post(body, signature="v0=" + "0" * 64).status == 401
    assert bot.send.post(body, timestamp=stale).status == 401
    assert bot.send.post(body, signed=False).status == 401
    assert _count(bot, SeenSlackRequest) == 0
    assert bot.send.post(body).status == 200
    assert _count(bot, SeenSlackRequest) == 1


def test_seen_requests_are_forgotten_after_ten_minutes_by_a_timer(bot: BotHarness) -> None:
    assert bot.send.command("help", BOB).status == 200
    clock.travel(timedelta(minutes=9))
    assert bot.send.command("help", BOB).status == 200
    assert forget_old_slack_requests(bot.ctx) == 0
    clock.travel(timedelta(minutes=1, seconds=1))  # the first is 10 min 1 s old
    assert forget_old_slack_requests(bot.ctx) == 1
    assert _count(bot, SeenSlackRequest) == 1

    bot.bot.start_timers()  # as `serve` does
    try:
        scheduler = bot.bot.scheduler
        assert scheduler is not None
        job = eventually(lambda: scheduler.get_job(forget_old_slack_requests.__name__))
        assert job.trigger.interval == timedelta(minutes=1)
    finally:
        bot.bot.stop()
