"""Hostile input gets a clear answer, never an error page or a stalled ack: durations too long
for a timedelta, in the quick form and in every modal where a duration is submitted (forged
payloads included), and ticket patterns that would backtrack for ever in Python's `re`.

Signed requests go to the real HTTP endpoint; the ticket-pattern story runs the real
`prod-access serve` process, so a stalled regex (which holds the GIL) stalls the server and not
the test, and the test's HTTP timeout turns that into a failure.
"""

from __future__ import annotations

from tests.conftest import BOB, LEAD1, BotHarness
from tests.fakes.slack_requests import select, text_input

HUGE_DURATIONS = ("1000000000d", "99999999999999999999h")
TOO_LONG = "is too long (at most 365d)"


# --- durations ----------------------------------------------------------------------------


def test_quick_form_answers_an_overflowing_duration_like_any_bad_duration(
    bot: BotHarness,
) -> None:
    for duration in HUGE_DURATIONS:
        answer = bot.send.command(f"orders-api read {duration} PAY-1 why", BOB)
        assert answer.status == 200, answer
        assert f"Duration '{duration}' {TOO_LONG}." in answer.text
        assert "/prod-access <system> <role> <duration> <ticket> <reason…>" in answer.text
    assert bot.slack.calls_to("chat.postMessage") == []  # nothing was requested


def test_request_modal_submit_with_a_forged_overflowing_duration_shows_it_inline(
    bot: BotHarness,
) -> None:
    """The modal offers a select, but a submit is only a payload: anyone can send any value."""
    view = {"type": "modal", "callback_id": "request_access", "id": "V1", "blocks": []}
    for duration in HUGE_DURATIONS:
        answer = bot.send.submit(
            view,
            {
                "system": select("orders-api", "system_select"),
                "role:orders-api": select("read", "role_select"),
                "duration:orders-api:read": select(duration, "duration_select"),
                "ticket": text_input("PAY-1", "ticket_input"),
                "reason": text_input("why", "reason_input"),
            },
            BOB,
        )
        assert answer.status == 200, answer
        body = answer.json()
        assert body["response_action"] == "errors"
        assert body["errors"] == {"duration:orders-api:read": f"Duration '{duration}' {TOO_LONG}."}
    assert bot.slack.calls_to("chat.postMessage") == []


def test_extend_modal_submit_with_an_overflowing_duration_shows_it_inline(
    bot: BotHarness,
) -> None:
    session = bot.granted("orders-api write 1h PAY-2 backfill", BOB, LEAD1)
    assert bot.send.click("extend_session", session.id, BOB, channel="D0BOB").status == 200
    modal = bot.slack.wait_for(
        "views.open", lambda a: a["view"].get("private_metadata") == session.id
    )[-1]["view"]
    for duration in HUGE_DURATIONS:
        values = {
            "duration": select(duration, "duration_select"),
            "reason": text_input("more time", "reason_input"),
        }
        answer = bot.send.submit(modal, values, BOB)
        assert answer.status == 200, answer
        body = answer.json()
        assert body["response_action"] == "errors"
        assert body["errors"] == {"duration": f"Duration '{duration}' {TOO_LONG}."}
    assert bot.latest_request_id() == session.request_id  # no extension was asked for
    assert bot.session_for(session.request_id).expires_at == session.expires_at
