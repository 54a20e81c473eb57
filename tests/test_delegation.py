"""Out of office (issue 15): an approver hands their approvals to another approver of the same
system for a while, from the command line (`--from`) or the Home tab (as the clicker). The
delegate's approval shows as "lea for tom" on the card and in the audit trail, never in the
requester's DM; it stops counting when the delegation ends, never approves the delegate's own
request, and counts a person once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import clock
from app.db import transaction
from app.jobs.waiting_requests import remind_and_escalate_waiting_requests
from app.models import AuditEvent
from app.models_features import Delegation
from app.operations.delegation import create_delegation
from tests.conftest import (
    BOB,
    LEAD1,
    MALLORY,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    BotHarness,
    eventually,
    make_settings,
    run_cli_here,
)
from tests.fakes.busy_policy import LEA, PEOPLE, TOM, write_busy_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture(params=["sqlite", "postgres"])
def busy_bot(
    request: pytest.FixtureRequest, tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> Iterator[BotHarness]:
    url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    policy = write_busy_policy(tmp_path / "policy.yml", webhook.url)
    slack.users.update(PEOPLE)
    harness = BotHarness(make_settings(tmp_path, slack, policy, url), slack)
    yield harness
    harness.stop()
    for user in PEOPLE:
        slack.users.pop(user, None)


def _cli(bot: BotHarness, tmp_path: Path, *args: str) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env = {
        **clean,
        "SLACK_API_URL": bot.slack.url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "DATABASE_URL": bot.ctx.settings.database_url,
        "POLICY_FILE": bot.ctx.settings.policy_file,
        "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    return run_cli_here(tmp_path, env, "delegate", *args)


def _events(bot: BotHarness, name: str) -> list[AuditEvent]:
    with transaction(bot.ctx.db) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def _card_updates(bot: BotHarness, request_id: str) -> list[str]:
    ts = bot.request(request_id).card_ts
    return [str(c["blocks"]) for c in bot.slack.calls_to("chat.update") if c["ts"] == ts]


def _refusal(bot: BotHarness, user: str, count: int = 1) -> str:
    return str(
        bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == user, count=count)[-1][
            "text"
        ]
    )


def test_lea_approves_for_tom_through_the_cli_shown_on_the_card_and_audit_not_in_the_dm(
    busy_bot: BotHarness, tmp_path: Path
) -> None:
    bot = busy_bot
    until = (clock.now() + timedelta(days=3)).date().isoformat()
    made = _cli(bot, tmp_path, f"<@{LEA}>", "--from", TOM, "--until", until)
    assert made.returncode == 0, made.stderr
    assert f"{LEA} decides for {TOM} until {until} " not in made.stdout  # through that day
    assert f"{LEA} decides for {TOM} until" in made.stdout
    assert any(
        f"<@{TOM}> handed you their approvals" in c["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c["channel"] == LEA
    )
    [created] = _events(bot, "delegation_created")
    assert created.actor.startswith("cli:")
    assert (created.detail["delegator"], created.detail["delegate"]) == (TOM, LEA)
    assert created.detail["systems"] == ["orders-api"] and created.detail["not_covered"] == [
        "billing"
    ]
    listed = _cli(bot, tmp_path, "--list")
    assert listed.returncode == 0 and f"{TOM}" in listed.stdout and f"{LEA}" in listed.stdout

    # LEA is not on the write role's approver list; acting for TOM she may decide it, and the
    # reminder asks her, for him.
    request_id = bot.quick_request("orders-api write 1h PAY-7 restart worker", BOB)
    clock.travel(timedelta(minutes=11))
    assert remind_and_escalate_waiting_requests(bot.ctx).reminded == [request_id]
    reminder = bot.slack.wait_for("chat.postMessage", lambda a: "Still waiting" in a["text"])[0]
    assert f"<@{LEA}> for <@{TOM}>, <@{LEAD1}>" in reminder["text"]
    bot.send.click("approve_request", request_id, LEA)

    eventually(lambda: bot.request(request_id).state == "approved", what="the approval")
    eventually(
        lambda: any(
            f"*Approved* by <@{LEA}> for <@{TOM}>" in u for u in _card_updates(bot, request_id)
        ),
        what="the card saying lea for tom",
    )
    [approved] = [e for e in _events(bot, "approved") if e.request_id == request_id]
    assert approved.actor == LEA and approved.detail["on_behalf_of"] == TOM
    dm = eventually(
        lambda: [
            c["text"]
            for c in bot.slack.calls_to("chat.postMessage")
            if c["channel"] == BOB and "approved your request" in (c.get("text") or "")
        ],
        what="the requester's DM",
    )[0]
    assert f"<@{LEA}> approved your request" in dm
    assert TOM not in dm and " for " not in dm.split("approved your request")[0]


def test_the_home_tab_button_hands_the_clickers_approvals_on(busy_bot: BotHarness) -> None:
    bot = busy_bot
    bot.send.interaction_event({"type": "app_home_opened", "user": TOM, "tab": "home"})
    home = bot.slack.wait_for("views.publish", lambda a: a["user_id"] == TOM)[-1]
    assert "delegate_open" in str(home["view"]["blocks"])

    bot.send.click("delegate_open", "", TOM)
    modal = bot.slack.wait_for("views.open", lambda a: a["view"].get("callback_id") == "delegate")[
        -1
    ]
    last_day = (clock.now() + timedelta(days=2)).date().isoformat()
    values = {
        "delegate_to": {"delegate_to_input": {"type": "users_select", "selected_user": LEA}},
        "delegate_until": {
            "delegate_until_input": {"type": "datepicker", "selected_date": last_day}
        },
    }
    answer = bot.send.submit(modal["view"], values, TOM)

    assert answer.status == 200 and answer.text == ""
    with transaction(bot.ctx.db) as db:
        [row] = db.scalars(select(Delegation)).all()
        assert (row.from_id, row.to_id, row.created_by) == (TOM, LEA, TOM)
        assert row.ends_at.date().isoformat() > last_day  # through the last day
    refreshed = bot.slack.wait_for("views.publish", lambda a: a["user_id"] == TOM, count=2)[-1]
    assert f"You handed your approvals to <@{LEA}>" in str(refreshed["view"]["blocks"])

    # Either of them may end it on their Home tab; nobody else.
    bot.send.click("delegation_end", row.id, MALLORY)
    assert "Only the person who handed on their approvals" in _refusal(bot, MALLORY)
    bot.send.click("delegation_end", row.id, LEA)
    eventually(lambda: _events(bot, "delegation_ended"), what="the delegation to end")
    assert _events(bot, "delegation_ended")[0].actor == LEA

    # Someone who approves nothing is refused on the click; a delegate who shares no system
    # with the delegator is refused in the modal.
    bot.send.click("delegate_open", "", BOB)
    assert "You approve no system" in _refusal(bot, BOB)
    refused = bot.send.submit(
        modal["view"],
        {**values, "delegate_to": {"delegate_to_input": {"selected_user": MALLORY}}},
        LEA,
    )
    assert "approves none of the systems" in refused.json()["errors"]["delegate_to"]


def test_a_delegation_that_ended_no_longer_counts(busy_bot: BotHarness, tmp_path: Path) -> None:
    bot = busy_bot
    made = create_delegation(bot.ctx, TOM, LEA, clock.now() + timedelta(hours=2), TOM)
    first = bot.quick_request("orders-api write 1h PAY-8 restart worker", BOB)
    cancelled = _cli(bot, tmp_path, "--cancel", made.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert _events(bot, "delegation_ended")[0].detail["why"] == "ended early"
    again = _cli(bot, tmp_path, "--cancel", made.id)
    assert again.returncode == 2 and "has ended already" in again.stderr
    assert len(_events(bot, "delegation_ended")) == 1

    bot.send.click("approve_request", first, LEA)
    assert "Only the approvers of Orders API write" in _refusal(bot, LEA)

    create_delegation(bot.ctx, TOM, LEA, clock.now() + timedelta(hours=1), TOM)
    second = bot.quick_request("orders-api write 1h PAY-9 restart worker", BOB)
    clock.travel(timedelta(hours=1, seconds=1))  # the window is over
    bot.send.click("approve_request", second, LEA)
    assert "Only the approvers of Orders API write" in _refusal(bot, LEA, count=2)
    assert bot.request(first).state == bot.request(second).state == "pending"


def test_a_delegate_cannot_approve_their_own_request_nor_the_delegators(
    busy_bot: BotHarness,
) -> None:
    bot = busy_bot
    create_delegation(bot.ctx, TOM, LEA, clock.now() + timedelta(days=1), TOM)
    own = bot.quick_request("orders-api write 1h PAY-10 restart worker", LEA)
    bot.send.click("approve_request", own, LEA)
    assert "can't approve your own request" in _refusal(bot, LEA)

    toms = bot.quick_request("orders-api write 1h PAY-11 restart worker", TOM)
    bot.send.click("approve_request", toms, LEA)  # TOM's right never covers TOM's request
    assert "Only the approvers of Orders API write" in _refusal(bot, LEA, count=2)
    assert bot.request(own).approved_by == bot.request(toms).approved_by == []


def test_n_of_m_counts_a_person_once_whether_they_approve_or_their_delegate_does(
    busy_bot: BotHarness,
) -> None:
    bot = busy_bot
    create_delegation(bot.ctx, TOM, LEA, clock.now() + timedelta(days=1), TOM)
    # LEA approves admin herself: one approval, counted once, though she also stands in for TOM.
    both = bot.quick_request("orders-api admin 1h PAY-12 rotate keys", BOB)
    bot.send.click("approve_request", both, LEA)
    eventually(lambda: bot.request(both).approved_by == [LEA], what="LEA's approval")
    bot.send.click("approve_request", both, LEA)
    assert "already approved" in _refusal(bot, LEA)
    assert bot.request(both).state == "pending"
    bot.send.click("approve_request", both, LEAD1)
    eventually(lambda: bot.request(both).state == "approved", what="the second person")

    # On deploy (two of TOM, LEAD1, LEAD2) LEA counts as TOM: TOM himself would count twice.
    deploy = bot.quick_request("orders-api deploy 1h PAY-13 ship it", BOB)
    bot.send.click("approve_request", deploy, LEA)
    eventually(lambda: bot.request(deploy).approved_by == [LEA], what="LEA's approval for TOM")
    assert bot.request(deploy).approvals[0].on_behalf_of == TOM
    bot.send.click("approve_request", deploy, TOM)
    assert f"<@{LEA}> already approved {deploy} for you" in _refusal(bot, TOM)
    assert bot.request(deploy).state == "pending"
    bot.send.click("approve_request", deploy, LEAD1)
    eventually(lambda: bot.request(deploy).state == "approved", what="LEAD1's approval")
    [approved] = [e for e in _events(bot, "approved") if e.request_id == deploy]
    assert approved.detail["approvers"] == [LEA, LEAD1]


def test_the_cli_names_people_by_handle_and_says_why_it_refuses(
    busy_bot: BotHarness, tmp_path: Path
) -> None:
    bot = busy_bot
    made = _cli(bot, tmp_path, "@lea", "--from", "@tom", "--until", "7d")
    assert made.returncode == 0, made.stderr

    nobody = _cli(bot, tmp_path, "@payments", "--from", TOM, "--until", "7d")
    too_long = _cli(bot, tmp_path, LEA, "--from", TOM, "--until", "31d")
    outsider = _cli(bot, tmp_path, MALLORY, "--from", TOM, "--until", "1d")

    assert nobody.returncode == 2 and "no person is called @payments" in nobody.stderr
    assert too_long.returncode == 2 and "at most 30 days" in too_long.stderr
    assert outsider.returncode == 2 and "approves none of the systems" in outsider.stderr
    with transaction(bot.ctx.db) as db:
        rows = db.scalars(select(Delegation)).all()
        assert [(d.from_id, d.to_id) for d in rows] == [(TOM, LEA)]
