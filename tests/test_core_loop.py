"""The seed workflow end to end over real HTTP: signed Slack requests into the bot, the bot's
Web API calls into the fake Slack server, grants and revokes into a real webhook target."""

from __future__ import annotations

import threading
from datetime import timedelta

from app import audit, clock
from app.db import transaction
from app.models import CloseoutState, SessionState
from tests.blocks_helpers import action_ids, button_values, offers, shows, texts
from tests.conftest import ALICE, BOB, LEAD1, LEAD2, MALLORY, BotHarness, eventually
from tests.fakes.slack_requests import text_input
from tests.fakes.webhook_receiver import WebhookReceiver


def _blocks(call: dict) -> str:
    """The texts of a message's blocks, one per line (what the reader sees)."""
    return "\n".join(texts(call.get("blocks")))


def _dm(bot: BotHarness, user: str, needle: str) -> dict:
    return bot.slack.wait_for(
        "chat.postMessage",
        lambda a: a.get("channel") == user and needle in _blocks(a) + "\n" + a["text"],
    )[-1]


def _dm_offering(bot: BotHarness, user: str, action_id: str) -> dict:
    """The latest DM to `user` with a button or input whose action_id is `action_id`."""
    return bot.slack.wait_for(
        "chat.postMessage",
        lambda a: a.get("channel") == user and offers(a.get("blocks"), action_id),
    )[-1]


def _events(bot: BotHarness, request_id: str) -> list[tuple[str, str]]:
    with transaction(bot.ctx.db) as db:
        return [(e.event, e.actor) for e in audit.events(db, request_id)]


def _approve_and_wait(bot: BotHarness, request_id: str, approver: str = LEAD1):
    assert bot.send.click("approve_request", request_id, approver).status == 200
    return bot.wait_session(request_id, SessionState.active)


def test_quick_request_is_approved_granted_expired_and_closed_out(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    answer = bot.send.command("orders-api write 30m PAY-184 restart payment worker", BOB)
    assert answer.status == 200
    assert "is on its way to the approvers" in answer.text
    card = bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == "C0APPROVALS")[0]
    request_id = eventually(
        lambda: bot.request(bot.latest_request_id()).card_ts and bot.latest_request_id()
    )
    assert request_id in answer.text
    card_json = _blocks(card)
    for expected in ("<@U0BOB>", "Orders API", "write", "30m", "PAY-184", "restart payment worker"):
        assert expected in card_json
    assert offers(card["blocks"], "approve_request") and offers(card["blocks"], "deny_request")
    _dm(bot, BOB, request_id)  # the requester's confirmation names the request id

    session = _approve_and_wait(bot, request_id)
    assert session.expires_at == session.granted_at + timedelta(minutes=30)
    grant = webhook.wait_for(1, action="grant")[0]
    assert grant.signature_valid
    assert grant.headers["idempotency-key"] == f"{session.id}:grant"
    assert grant.body["user"] == {
        "slack_id": BOB,
        "email": "bob@example.com",
        "identity": "bob@example.com",
    }
    assert grant.body["grant"] == "orders-admin" and grant.body["ticket"] == "PAY-184"
    assert grant.body["expires_at"].endswith("Z")

    updated = bot.slack.wait_for("chat.update", lambda a: "Active" in _blocks(a))[-1]
    assert updated["ts"] == bot.request(request_id).card_ts
    assert not {"approve_request", "deny_request"} & set(action_ids(updated["blocks"]))
    assert "Approved" in _blocks(updated) and "<@U0LEAD1>" in _blocks(updated)
    granted_dm = _dm_offering(bot, BOB, "end_session")
    assert f"<!date^{int(session.expires_at.timestamp())}^" in _blocks(granted_dm)

    clock.travel(timedelta(minutes=30, seconds=1))
    assert bot.sweep().expired == [session.id]
    revoke = webhook.wait_for(1, action="revoke")[0]
    assert revoke.signature_valid and revoke.headers["idempotency-key"] == f"{session.id}:revoke"
    session = bot.wait_session(request_id, SessionState.ended)
    assert session.closeout_state == CloseoutState.prompted
    prompt = _dm_offering(bot, BOB, "open_closeout")
    assert "expired" in _blocks(prompt)

    assert bot.send.click("open_closeout", session.id, BOB, channel="D0BOB").status == 200
    modal = bot.slack.wait_for("views.open", lambda a: a["view"].get("callback_id") == "closeout")
    answer = bot.send.submit(
        modal[0]["view"],
        {
            "changes": text_input("restarted payment-worker-2", "changes_input"),
            "followups": text_input("PAY-185 fix the leak", "followups_input"),
        },
        BOB,
    )
    assert answer.status == 200 and answer.text == ""
    thread = bot.slack.wait_for(
        "chat.postMessage", lambda a: a.get("thread_ts") and "Closeout" in a.get("text", "")
    )[0]
    assert thread["thread_ts"] == bot.request(request_id).card_ts
    assert "restarted payment-worker-2" in thread["text"] and "PAY-185" in thread["text"]
    session = bot.session_for(request_id)
    assert session.closeout_state == CloseoutState.closed_out
    assert session.closeout_changes == "restarted payment-worker-2"

    assert _events(bot, request_id) == [
        ("requested", BOB),
        ("approved", LEAD1),
        ("granted", "prod-access"),
        ("expired", "prod-access"),
        ("revoked", "prod-access"),
        ("closeout_prompted", "prod-access"),
        ("closeout", BOB),
    ]


def test_modal_path_updates_roles_for_the_chosen_system_and_submits(bot: BotHarness) -> None:
    assert bot.send.command("", BOB).status == 200
    modal = bot.slack.wait_for("views.open")[0]["view"]
    assert modal["callback_id"] == "request_access"
    assert not offers(modal, "role_select")  # no roles before a system is chosen

    values = {
        "system": {
            "system_select": {"type": "static_select", "selected_option": {"value": "orders-api"}}
        }
    }
    assert bot.send.modal_select(modal, values, "system_select", "system", BOB).status == 200
    updated = bot.slack.wait_for("views.update")[0]
    view = updated["view"]
    role_block = next(b for b in view["blocks"] if b["block_id"].startswith("role:"))
    assert [o["value"] for o in role_block["element"]["options"]] == ["read", "write"]

    values[role_block["block_id"]] = {
        "role_select": {"type": "static_select", "selected_option": {"value": "read"}}
    }
    bot.send.modal_select(view, values, "role_select", role_block["block_id"], BOB)
    view = bot.slack.wait_for("views.update", count=2)[-1]["view"]
    duration_block = next(b for b in view["blocks"] if b["block_id"].startswith("duration:"))
    options = [o["value"] for o in duration_block["element"]["options"]]
    assert options == ["15m", "30m"]  # bounded by read's 30m maximum

    values[duration_block["block_id"]] = {
        "duration_select": {"type": "static_select", "selected_option": {"value": "15m"}}
    }
    values["ticket"] = text_input("INC-7", "ticket_input")
    values["reason"] = text_input("check the order backlog", "reason_input")
    answer = bot.send.submit(view, values, BOB)
    assert answer.status == 200 and answer.text == ""
    card = bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == "C0APPROVALS")[0]
    assert "INC-7" in _blocks(card) and "15m" in _blocks(card)


def test_modal_shows_inline_errors_and_creates_nothing(bot: BotHarness) -> None:
    view = {"type": "modal", "callback_id": "request_access", "id": "V1", "blocks": []}
    answer = bot.send.submit(
        view,
        {
            "system": {
                "system_select": {
                    "type": "static_select",
                    "selected_option": {"value": "orders-api"},
                }
            },
            "role:orders-api": {
                "role_select": {"type": "static_select", "selected_option": {"value": "read"}}
            },
            "duration:orders-api:read": {
                "duration_select": {"type": "static_select", "selected_option": {"value": "2h"}}
            },
            "ticket": text_input("not a ticket", "ticket_input"),
            "reason": text_input("   ", "reason_input"),
        },
        BOB,
    )
    assert answer.status == 200
    body = answer.json()
    assert body["response_action"] == "errors"
    assert "longer than the 30m allowed" in body["errors"]["duration:orders-api:read"]
    assert "Ticket must match" in body["errors"]["ticket"]
    assert body["errors"]["reason"]
    unknown = bot.send.submit(
        view,
        {
            "system": {
                "system_select": {"type": "static_select", "selected_option": {"value": "nope"}}
            },
            "ticket": text_input("INC-1", "ticket_input"),
            "reason": text_input("x", "reason_input"),
        },
        BOB,
    )
    assert "Unknown system" in unknown.json()["errors"]["system"]
    assert bot.slack.calls_to("chat.postMessage") == []


def test_quick_form_mistakes_get_a_precise_answer_with_usage(bot: BotHarness) -> None:
    cases = {
        "orders-api write": "Missing: duration, ticket, reason",
        "billing write 30m PAY-1 fix": "Unknown system 'billing'",
        "orders-api admin 30m PAY-1 fix": "Unknown access 'admin'",
        "orders-api read 3h PAY-1 fix": "longer than the 30m allowed",
        "orders-api read 10x PAY-1 fix": "Invalid duration '10x'",
        "orders-api read 10m pay-1 fix": "Ticket must match",
    }
    for text, expected in cases.items():
        answer = bot.send.command(text, BOB)
        assert answer.status == 200
        assert expected in answer.text, (text, answer.text)
        # the usage escaped, so that Slack shows its placeholders as written
        assert "/prod-access &lt;system&gt; &lt;role&gt; &lt;duration&gt;" in answer.text
    assert bot.slack.calls_to("chat.postMessage") == []


def test_help_lists_systems_and_roles(bot: BotHarness) -> None:
    answer = bot.send.command("help", BOB)
    assert "`orders-api`" in answer.text and "`read` (max 30m)" in answer.text
    assert "`write` (max 2h)" in answer.text and "Usage" in answer.text


def test_unsigned_badly_signed_and_stale_requests_are_refused(bot: BotHarness) -> None:
    body = bot.send.command_body("help", BOB)
    assert bot.send.post(body, signed=False).status == 401
    assert bot.send.post(body, signature="v0=" + "0" * 64).status == 401
    import time

    stale = int(time.time()) - 6 * 60
    assert bot.send.post(body, timestamp=stale).status == 401
    assert bot.send.post(body).status == 200


def test_non_approver_and_requester_cannot_approve(bot: BotHarness) -> None:
    request_id = bot.quick_request("orders-api read 15m PAY-9 look at logs", ALICE)
    bot.send.click("approve_request", request_id, MALLORY)
    refusal = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == MALLORY)[0]
    assert "Only the approvers of Orders API" in refusal["text"]
    bot.send.click("approve_request", request_id, ALICE)  # ALICE is an approver, but asked
    own = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == ALICE)[0]
    assert "can't approve your own request" in own["text"]
    bot.send.click("deny_request", request_id, MALLORY)
    bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == MALLORY, count=2)
    assert bot.request(request_id).state == "pending"
    assert bot.session_for(request_id) is None
    assert bot.slack.calls_to("chat.update") == []


def test_double_approve_grants_once(bot: BotHarness, webhook: WebhookReceiver) -> None:
    request_id = bot.quick_request("orders-api write 1h PAY-2 migrate", BOB)
    clicks = [
        threading.Thread(target=bot.send.click, args=("approve_request", request_id, approver))
        for approver in (LEAD1, LEAD1, LEAD2, LEAD1)
    ]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    bot.wait_session(request_id, SessionState.active)
    refusals = bot.slack.wait_for("chat.postEphemeral", count=3)
    assert all("already approved" in r["text"] for r in refusals)
    assert webhook.actions() == ["grant"]
    assert [e for e, _ in _events(bot, request_id)].count("granted") == 1
    assert [e for e, _ in _events(bot, request_id)].count("approved") == 1


def test_deny_records_who_denied_and_tells_the_requester(bot: BotHarness) -> None:
    request_id = bot.quick_request("orders-api write 1h PAY-3 drop table", BOB)
    answer = bot.deny(request_id, LEAD2, "use the <!channel> read replica & ask again")
    assert answer.status == 200 and answer.text == ""
    update = bot.slack.wait_for("chat.update", lambda a: "Denied" in _blocks(a))[0]
    assert "<@U0LEAD2>" in _blocks(update) and not offers(update["blocks"], "approve_request")
    assert "use the &lt;!channel&gt; read replica &amp; ask again" in _blocks(update)
    dm = _dm(bot, BOB, "denied your request")
    assert "Reason: use the &lt;!channel&gt; read replica" in dm["text"]
    assert bot.request(request_id).decided_by == LEAD2
    assert bot.request(request_id).decision_note == "use the <!channel> read replica & ask again"
    assert _events(bot, request_id) == [("requested", BOB), ("denied", LEAD2)]


def test_user_text_is_escaped_on_the_card(bot: BotHarness) -> None:
    request_id = bot.quick_request(
        "orders-api read 15m PAY-4 <!channel> see <http://evil|click> & co", BOB
    )
    card = bot.slack.calls_to("chat.postMessage")
    card = next(c for c in card if c.get("channel") == "C0APPROVALS")
    text = _blocks(card)
    assert "<!channel>" not in text and "<http://evil|click>" not in text
    assert "&lt;!channel&gt;" in text and "&lt;http://evil|click&gt;" in text and "&amp; co" in text
    assert bot.request(request_id).reason == "<!channel> see <http://evil|click> & co"


def test_failed_grant_is_shown_and_can_be_retried(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.respond_with(503)
    request_id = bot.quick_request("orders-api write 1h PAY-5 hotfix", BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    session = bot.wait_session(request_id, SessionState.grant_failed)
    assert "HTTP 503" in session.last_error
    card = bot.slack.wait_for("chat.update", lambda a: "Grant failed" in _blocks(a))[-1]
    assert "HTTP 503" in _blocks(card) and offers(card["blocks"], "retry_grant")
    assert "Active" not in _blocks(card)
    _dm(bot, BOB, "Nothing was granted")

    bot.send.click("retry_grant", session.id, LEAD2)
    bot.wait_session(request_id, SessionState.active)
    assert webhook.actions() == ["grant", "grant"]
    assert [e for e, _ in _events(bot, request_id)] == [
        "requested",
        "approved",
        "grant_failed",
        "grant_retried",
        "granted",
    ]


def test_failed_revoke_is_retried_with_backoff_and_shown_in_the_thread(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    request_id = bot.quick_request("orders-api write 1h PAY-6 hotfix", BOB)
    session = _approve_and_wait(bot, request_id)
    webhook.respond_with(500, times=2)
    clock.travel(timedelta(hours=1, seconds=1))
    bot.sweep()
    failing = bot.wait_session(request_id, SessionState.revoke_failing)
    assert failing.attempts == 1 and failing.next_attempt_at > clock.now()
    thread = bot.slack.wait_for("chat.postMessage", lambda a: "Revoke failed" in a.get("text", ""))[
        0
    ]
    assert thread["thread_ts"] == bot.request(request_id).card_ts
    bot.sweep()  # not due yet: nothing is called
    assert webhook.actions().count("revoke") == 1

    clock.travel(timedelta(seconds=2))
    bot.sweep()
    assert bot.wait_session(request_id, SessionState.revoke_failing).attempts == 2
    clock.travel(timedelta(seconds=5))
    bot.sweep()
    ended = bot.wait_session(request_id, SessionState.ended)
    assert webhook.actions() == ["grant", "revoke", "revoke", "revoke"]
    assert [e for e, _ in _events(bot, request_id)].count("revoke_failed") == 2
    assert ended.id == session.id


def test_provider_down_alerts_the_channel_after_three_failures_and_answers_when_back(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    request_id = bot.quick_request("orders-api write 1h PAY-6 hotfix", BOB)
    session = _approve_and_wait(bot, request_id)
    webhook.respond_with(503, times=3)
    clock.travel(timedelta(hours=1, seconds=1))
    for attempt in (1, 2, 3):
        bot.sweep()
        bot.wait_session(request_id, SessionState.revoke_failing)
        eventually(
            lambda n=attempt: bot.session_for(request_id).attempts == n, what=f"attempt {attempt}"
        )
        clock.travel(timedelta(seconds=10))
    failures = bot.slack.wait_for(
        "chat.postMessage", lambda a: "Revoke failed" in a.get("text", ""), count=3
    )
    assert [bool(f.get("reply_broadcast")) for f in failures] == [False, False, True]
    card = bot.slack.wait_for("chat.update", lambda a: "Revoke failing" in _blocks(a))[-1]
    assert "NOT yet removed" in _blocks(card)
    bot.send.interaction_event({"type": "app_home_opened", "user": BOB, "tab": "home"})
    bot.slack.wait_for(
        "views.publish",
        lambda a: a["user_id"] == BOB and shows(a["view"], "revoke failing"),
    )
    bot.sweep()
    ended = bot.wait_session(request_id, SessionState.ended)
    answer = bot.slack.wait_for(
        "chat.postMessage", lambda a: "completed after 3 failed attempts" in a.get("text", "")
    )[0]
    assert answer["reply_broadcast"] is True
    assert answer["thread_ts"] == bot.request(request_id).card_ts
    assert ended.id == session.id and webhook.held() == set()


def test_end_access_now_and_done_revoke_early(bot: BotHarness, webhook: WebhookReceiver) -> None:
    first = bot.quick_request("orders-api write 1h PAY-7 hotfix", BOB)
    session = _approve_and_wait(bot, first)
    bot.send.click("end_session", session.id, MALLORY, channel="D0BOB")
    bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == MALLORY)
    assert bot.session_for(first).state == SessionState.active
    bot.send.click("end_session", session.id, BOB, channel="D0BOB")
    ended = bot.wait_session(first, SessionState.ended)
    assert ended.end_reason == "released" and ended.ended_by == BOB

    second = bot.quick_request("orders-api read 15m PAY-8 check", BOB)
    _approve_and_wait(bot, second)
    listing = bot.send.command("list", BOB)
    assert "active until" in listing.text and "read on orders-api" in listing.text
    answer = bot.send.command("done", BOB)
    assert "Ending" in answer.text
    bot.wait_session(second, SessionState.ended)
    assert webhook.actions() == ["grant", "revoke", "grant", "revoke"]
    assert "no active access" in bot.send.command("done", BOB).text
    assert ("released", BOB) in _events(bot, second)


def test_overlapping_sessions_keep_access_until_the_last_one_ends(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    first = bot.quick_request("orders-api write 30m PAY-10 part one", BOB)
    one = _approve_and_wait(bot, first)
    second = bot.quick_request("orders-api write 2h PAY-11 part two", BOB)
    two = _approve_and_wait(bot, second)

    clock.travel(timedelta(minutes=31))
    bot.sweep()
    assert bot.wait_session(first, SessionState.ended).id == one.id
    assert webhook.actions() == ["grant", "grant"]  # no revoke: PAY-11 still needs the access
    assert ("revoke_skipped", "prod-access") in _events(bot, first)
    assert bot.session_for(second).state == SessionState.active

    clock.travel(timedelta(hours=2))
    bot.sweep()
    assert bot.wait_session(second, SessionState.ended).id == two.id
    assert webhook.actions() == ["grant", "grant", "revoke"]
    assert ("revoked", "prod-access") in _events(bot, second)


def test_closeout_reminders_follow_the_policy_until_a_note_is_written(bot: BotHarness) -> None:
    request_id = bot.quick_request("orders-api read 15m PAY-12 check", BOB)
    session = _approve_and_wait(bot, request_id)
    bot.send.click("end_session", session.id, BOB, channel="D0BOB")
    bot.wait_session(request_id, SessionState.ended)
    assert bot.reminders() == []
    clock.travel(timedelta(minutes=15, seconds=1))
    assert bot.reminders() == [session.id]
    _dm(bot, BOB, "Reminder 1")
    assert bot.reminders() == []
    clock.travel(timedelta(hours=1))
    assert bot.reminders() == [session.id]
    _dm(bot, BOB, "Reminder 2")
    bot.send.click("open_closeout", session.id, ALICE, channel="D0ALICE")
    bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == ALICE)
    bot.send.click("open_closeout", session.id, BOB, channel="D0BOB")
    modal = bot.slack.wait_for("views.open")[0]["view"]
    empty = bot.send.submit(modal, {"changes": text_input("  ", "changes_input")}, BOB)
    assert empty.json()["response_action"] == "errors"
    bot.send.submit(modal, {"changes": text_input("nothing", "changes_input")}, BOB)
    eventually(lambda: bot.session_for(request_id).closeout_state == CloseoutState.closed_out)
    clock.travel(timedelta(days=2))
    assert bot.reminders() == []


def test_home_tab_shows_open_access_with_end_button(bot: BotHarness) -> None:
    request_id = bot.quick_request("orders-api read 15m PAY-13 check", BOB)
    session = _approve_and_wait(bot, request_id)
    pending = bot.quick_request("orders-api write 1h PAY-14 fix", BOB)
    answer = bot.send.interaction_event(
        {"type": "app_home_opened", "user": BOB, "channel": "D0BOB", "tab": "home"}
    )
    assert answer.status == 200
    view = bot.slack.wait_for(
        "views.publish", lambda a: a["user_id"] == BOB and shows(a["view"], pending)
    )[-1]["view"]
    assert view["type"] == "home"
    assert shows(view, session.id) and session.id in button_values(view)
    assert offers(view, "end_session")


def test_unknown_email_refuses_the_request_with_the_reason(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    bot.slack.fail("users.info", "user_not_found")
    answer = bot.send.command("orders-api read 15m PAY-15 check", BOB)
    assert "Cannot look up" in answer.text and "(user_not_found)" in answer.text
    assert bot.slack.calls_to("chat.postMessage") == []  # no approver is asked
    assert webhook.actions() == []  # nothing was sent to the provider


def test_a_card_that_was_never_posted_is_posted_at_start(bot: BotHarness) -> None:
    from app.jobs.expire import announce_unposted_requests

    bot.slack.fail("chat.postMessage", "channel_not_found")
    bot.send.command("orders-api read 15m PAY-16 check", BOB)
    warning = _dm(bot, BOB, "could not be posted")
    assert "channel_not_found" in warning["text"]
    request_id = bot.latest_request_id()
    assert bot.request(request_id).card_ts is None
    assert announce_unposted_requests(bot.ctx) == [request_id]
    assert bot.request(request_id).card_ts is not None
    assert announce_unposted_requests(bot.ctx) == []


def test_metrics_show_sessions_by_state_and_provider_latencies(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    import urllib.request

    request_id = bot.quick_request("orders-api write 30m PAY-17 check", BOB)
    _approve_and_wait(bot, request_id)
    bot.quick_request("orders-api read 15m PAY-18 look", BOB)
    url = bot.url.replace("/slack/events", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    assert 'prod_access_sessions{state="active"} 1.0' in text
    assert 'prod_access_requests{state="pending"} 1.0' in text
    assert 'prod_access_requests{state="approved"} 1.0' in text
    assert "prod_access_grant_seconds_count" in text
    clock.travel(timedelta(minutes=31))
    bot.sweep()
    bot.wait_session(request_id, SessionState.ended)
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert 'prod_access_sessions{state="ended"} 1.0' in text
    assert 'prod_access_sessions{state="active"} 0.0' in text
    assert "prod_access_expiry_lag_seconds_bucket" in text


def test_a_revoke_is_claimed_so_concurrent_workers_call_the_provider_once(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    """Sweeps in several replicas, or a sweep and an End-now click, may reach the same
    session at once: exactly one of them revokes at the provider."""
    from app.models import EndReason
    from app.operations.end_session import end_session, revoke_session

    request_id = bot.quick_request("orders-api write 1h PAY-19 hotfix", BOB)
    session = _approve_and_wait(bot, request_id)
    webhook.respond_with(500)
    clock.travel(timedelta(hours=1, seconds=1))
    bot.sweep()
    bot.wait_session(request_id, SessionState.revoke_failing)
    clock.travel(timedelta(minutes=10))  # the retry is due
    webhook.delay(0.3)  # the first worker's call is still in flight when the others arrive
    workers = [
        threading.Thread(target=revoke_session, args=(bot.ctx, session.id)) for _ in range(3)
    ] + [threading.Thread(target=end_session, args=(bot.ctx, session.id, EndReason.released, BOB))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert bot.session_for(request_id).state == SessionState.ended
    assert webhook.actions() == ["grant", "revoke", "revoke"]  # the failed one, then one retry
    assert [e for e, _ in _events(bot, request_id)].count("revoked") == 1
