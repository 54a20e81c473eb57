"""Approvers who are busy (issue 15): a pending request reminds its approvers in the card's
thread after `remind_approvers_after`, is escalated to `escalation_channel` after
`escalate_after`, each once, and the requester hears of both; `notify` people hear of a request
and may not decide it. The clock is moved and the timer run by the test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select

from app import clock
from app.db import transaction
from app.jobs.waiting_requests import remind_and_escalate_waiting_requests
from app.models import AuditEvent
from app.policy import PolicyError, load_policy
from tests.conftest import BOB, LEAD1, BotHarness, eventually, make_settings
from tests.fakes.busy_policy import ESCALATION_CHANNEL, LEA, NOTE, PEOPLE, TOM, write_busy_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

T = TypeVar("T")


def _harness(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, url: str | None
) -> BotHarness:
    policy = write_busy_policy(tmp_path / "policy.yml", webhook.url)
    return BotHarness(make_settings(tmp_path, slack, policy, url), slack)


@pytest.fixture(params=["sqlite", "postgres"])
def busy_bot(
    request: pytest.FixtureRequest, tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> Iterator[BotHarness]:
    url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    slack.users.update(PEOPLE)
    harness = _harness(tmp_path, slack, webhook, url)
    yield harness
    harness.stop()
    for user in PEOPLE:
        slack.users.pop(user, None)


def _thread(bot: BotHarness, request_id: str) -> list[str]:
    """The texts posted in the card's thread so far."""
    ts = bot.request(request_id).card_ts
    return [c["text"] for c in bot.slack.calls_to("chat.postMessage") if c.get("thread_ts") == ts]


def _dms(bot: BotHarness, user: str) -> list[str]:
    return [
        c.get("text") or "" for c in bot.slack.calls_to("chat.postMessage") if c["channel"] == user
    ]


def _in_channel(bot: BotHarness, channel: str) -> list[str]:
    return [
        c["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c["channel"] == channel and not c.get("thread_ts")
    ]


def _events(bot: BotHarness, request_id: str, name: str) -> list[AuditEvent]:
    with transaction(bot.ctx.db) as db:
        return list(
            db.scalars(
                select(AuditEvent).where(
                    AuditEvent.request_id == request_id, AuditEvent.event == name
                )
            )
        )


def _reminders(bot: BotHarness, request_id: str) -> list[str]:
    return [t for t in _thread(bot, request_id) if t.startswith(":bell: Still waiting")]


def test_approvers_who_have_not_approved_are_reminded_once_in_the_thread_after_10m(
    busy_bot: BotHarness,
) -> None:
    bot = busy_bot
    request_id = bot.quick_request("orders-api admin 1h PAY-1 rotate keys", BOB)
    bot.send.click("approve_request", request_id, LEAD1)  # 1 of 2
    eventually(lambda: bot.request(request_id).approved_by == [LEAD1], what="LEAD1's approval")

    clock.travel(timedelta(minutes=9, seconds=50))
    assert remind_and_escalate_waiting_requests(bot.ctx).reminded == []
    clock.travel(timedelta(seconds=20))
    assert remind_and_escalate_waiting_requests(bot.ctx).reminded == [request_id]
    assert remind_and_escalate_waiting_requests(bot.ctx).reminded == []  # once

    [reminder] = _reminders(bot, request_id)
    assert f"<@{TOM}>" in reminder and f"<@{LEA}>" in reminder
    assert f"<@{LEAD1}>" not in reminder and f"<@{BOB}>" not in reminder
    assert "Still waiting after 10m" in reminder and "PAY-1" in reminder
    assert any("is still waiting; the approvers were reminded" in t for t in _dms(bot, BOB))
    [event] = _events(bot, request_id, "approvers_reminded")
    assert event.actor == "prod-access" and event.detail["waited"] == "10m"
    assert _in_channel(bot, ESCALATION_CHANNEL) == []  # not yet: 30m


def test_a_request_waiting_30m_is_escalated_once_and_the_requester_sees_it(
    busy_bot: BotHarness,
) -> None:
    bot = busy_bot
    request_id = bot.quick_request("orders-api write 1h PAY-2 restart worker", BOB)
    bot.send.interaction_event({"type": "app_home_opened", "user": BOB, "tab": "home"})
    bot.slack.wait_for("views.publish", lambda a: a["user_id"] == BOB)

    clock.travel(timedelta(minutes=11))
    assert remind_and_escalate_waiting_requests(bot.ctx).escalated == []
    clock.travel(timedelta(minutes=20))
    done = remind_and_escalate_waiting_requests(bot.ctx)
    assert (done.reminded, done.escalated) == ([], [request_id])
    assert remind_and_escalate_waiting_requests(bot.ctx).escalated == []  # once

    [escalation] = _in_channel(bot, ESCALATION_CHANNEL)
    assert "*Waiting for approval for 31m*" in escalation
    assert f"<@{BOB}>" in escalation and "*Orders API*" in escalation
    assert "*write*" in escalation and "ticket PAY-2" in escalation and request_id in escalation
    assert "<#C0APPROVALS>" in escalation  # where the card is
    assert f"<@{TOM}>" in escalation and f"<@{LEAD1}>" in escalation
    assert any(f"Escalated to <#{ESCALATION_CHANNEL}>" in t for t in _thread(bot, request_id))
    dms = _dms(bot, BOB)
    assert any("still waiting; the approvers were reminded" in t for t in dms)
    assert any(f"waited 31m; it was escalated to <#{ESCALATION_CHANNEL}>" in t for t in dms)
    home = bot.slack.calls_to("views.publish")[-1]
    assert home["user_id"] == BOB
    shown = str(home["view"]["blocks"])
    assert "approvers reminded" in shown and f"escalated to <#{ESCALATION_CHANNEL}>" in shown
    [event] = _events(bot, request_id, "request_escalated")
    assert event.detail == {"channel": ESCALATION_CHANNEL, "waited": "31m"}


def test_a_request_decided_meanwhile_is_neither_reminded_nor_escalated(
    busy_bot: BotHarness,
) -> None:
    bot = busy_bot
    request_id = bot.quick_request("orders-api write 1h PAY-3 restart worker", BOB)
    clock.travel(timedelta(minutes=5))
    bot.deny(request_id, TOM, "not now")
    eventually(lambda: bot.request(request_id).state == "denied", what="the denial")

    clock.travel(timedelta(hours=1))
    done = remind_and_escalate_waiting_requests(bot.ctx)

    assert (done.reminded, done.escalated) == ([], [])
    assert _reminders(bot, request_id) == [] and _in_channel(bot, ESCALATION_CHANNEL) == []
    assert _events(bot, request_id, "approvers_reminded") == []


def test_notify_people_are_mentioned_on_the_card_but_refused_when_they_approve(
    busy_bot: BotHarness,
) -> None:
    bot = busy_bot
    request_id = bot.quick_request("orders-api write 1h PAY-4 restart worker", BOB)
    [told] = eventually(
        lambda: [t for t in _thread(bot, request_id) if t.startswith(":information_source:")],
        what="the notify line",
    )
    assert f"For your information, <@{NOTE}>" in told and "Only the approvers can decide" in told

    bot.send.click("approve_request", request_id, NOTE)
    refusal = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == NOTE)[0]

    assert "Only the approvers of Orders API write" in refusal["text"]
    assert bot.request(request_id).approved_by == [] and bot.request(request_id).state == "pending"


def test_escalate_after_without_an_escalation_channel_stops_start_at_its_line(
    tmp_path: Path,
) -> None:
    no_channel = write_busy_policy(tmp_path / "a.yml", "http://127.0.0.1:9/", "notify: []")
    policy = load_policy(no_channel)  # the built-in 30m alone escalates nowhere: no error
    system = policy.systems[0]
    from app import policy_busy

    assert policy_busy.escalate_after(policy, system, "write") is None
    text = no_channel.read_text().replace(
        "roles:\n      - {id: read", "escalate_after: 20m\n    roles:\n      - {id: read", 1
    )
    bad = tmp_path / "b.yml"
    bad.write_text(text)
    line = text.splitlines().index("    escalate_after: 20m") + 1

    with pytest.raises(PolicyError) as refused:
        load_policy(bad)

    assert str(refused.value).startswith(f"{bad}:{line}: systems[0].escalate_after: orders-api ")
    assert "no escalation_channel" in str(refused.value)


def test_two_replicas_remind_and_escalate_once(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, pg_database: str
) -> None:
    one = _harness(tmp_path, slack, webhook, pg_database)
    two = _harness(tmp_path, slack, webhook, pg_database)
    try:
        ids = [one.quick_request(f"orders-api write 1h PAY-{n} fix", BOB) for n in range(5)]
        clock.travel(timedelta(minutes=31))

        runs = _at_once(
            lambda: remind_and_escalate_waiting_requests(one.ctx),
            lambda: remind_and_escalate_waiting_requests(two.ctx),
        )

        assert sorted(runs[0].reminded + runs[1].reminded) == sorted(ids)
        assert sorted(runs[0].escalated + runs[1].escalated) == sorted(ids)
        for request_id in ids:
            assert len(_reminders(one, request_id)) == 1
            assert len(_events(one, request_id, "approvers_reminded")) == 1
            assert len(_events(one, request_id, "request_escalated")) == 1
        assert len(_in_channel(one, ESCALATION_CHANNEL)) == len(ids)
    finally:
        one.stop()
        two.stop()


def _at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released together; their results in order."""
    start = threading.Barrier(len(calls))
    results: list[T | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        start.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]
