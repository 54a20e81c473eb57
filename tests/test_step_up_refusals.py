"""Every step-up refusal is audited (`step_up_failed` with its reason) and changes nothing:
no approval is counted, the request stays pending, nothing is granted."""

from __future__ import annotations

from datetime import timedelta

import requests

from app import clock
from app.jobs.step_up import forget_old_step_up_logins
from app.models import RequestState
from tests.fakes.step_up import BOB, LEAD1, StepUpBot, stepped
from tests.fakes.webhook_receiver import WebhookReceiver

__all__ = ["stepped"]


def _refused(bot: StepUpBot, request_id: str, page: requests.Response, reason: str) -> None:
    assert page.status_code == 403, page.text
    assert "Not approved:" in page.text
    assert bot.failures()[-1] == reason
    assert bot.approvals(request_id) == []
    assert bot.bot.request(request_id).state == RequestState.pending


def _request(bot: StepUpBot) -> str:
    return bot.bot.quick_request("orders-api write 30m PAY-9 fix", BOB)


def test_a_login_as_someone_else_is_refused(stepped: StepUpBot, webhook: WebhookReceiver) -> None:
    request_id = _request(stepped)
    stepped.idp.log_in_as(sub="sub-mallory", email="mallory@example.com")
    _refused(
        stepped, request_id, stepped.open(stepped.click_approve(request_id, LEAD1)), "wrong_person"
    )
    event = stepped.events("step_up_failed")[-1]
    assert event.actor == LEAD1 and event.detail["subject"] == "sub-mallory"
    assert webhook.actions() == []


def test_a_login_as_the_requester_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    stepped.idp.log_in_as(sub="sub-bob", email="bob@example.com")
    _refused(
        stepped, request_id, stepped.open(stepped.click_approve(request_id, LEAD1)), "requester"
    )


def test_an_unverified_email_does_not_name_the_approver(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    stepped.idp.log_in_as(email_verified=False)
    _refused(
        stepped, request_id, stepped.open(stepped.click_approve(request_id, LEAD1)), "wrong_person"
    )


def test_a_login_older_than_step_up_max_age_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    stepped.idp.log_in_as(seconds_ago=600)
    page = stepped.open(stepped.click_approve(request_id, LEAD1))
    _refused(stepped, request_id, page, "stale_login")


def test_a_login_without_mfa_in_amr_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    stepped.idp.log_in_as(amr=("pwd",))
    page = stepped.open(stepped.click_approve(request_id, LEAD1))
    _refused(stepped, request_id, page, "no_mfa")
    assert "did not use MFA" in page.text


def test_an_id_token_with_a_bad_signature_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    stepped.idp.tamper.rogue_key = True
    page = stepped.open(stepped.click_approve(request_id, LEAD1))
    _refused(stepped, request_id, page, "bad_signature")


def test_an_id_token_for_another_client_or_nonce_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    stepped.idp.tamper.claims = {"aud": "someone-else"}
    _refused(
        stepped, request_id, stepped.open(stepped.click_approve(request_id, LEAD1)), "invalid_token"
    )
    stepped.idp.tamper.claims = {"nonce": "replayed"}
    _refused(
        stepped,
        request_id,
        stepped.open(stepped.click_approve(request_id, LEAD1)),
        "nonce_mismatch",
    )


def test_an_unknown_link_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    page = stepped.open(f"{stepped.public_url}/step-up/not-a-token")
    _refused(stepped, request_id, page, "unknown_token")
    assert stepped.events("step_up_failed")[-1].actor == "anonymous"


def test_a_used_link_is_refused_the_second_time(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    link = stepped.click_approve(request_id, LEAD1)
    assert "Approval counted" in stepped.open(link).text
    page = stepped.open(link)
    assert page.status_code == 403 and stepped.failures() == ["reused_token"]
    assert stepped.approvals(request_id) == [LEAD1]
    assert len(stepped.events("approval_recorded")) == 1


def test_an_expired_link_is_refused(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    link = stepped.click_approve(request_id, LEAD1)
    clock.travel(timedelta(minutes=5, seconds=1))
    _refused(stepped, request_id, stepped.open(link), "expired_token")


def test_a_callback_in_another_browser_or_with_another_state_is_refused(
    stepped: StepUpBot,
) -> None:
    request_id = _request(stepped)
    link = stepped.click_approve(request_id, LEAD1)
    to_idp = stepped.browser.get(link, allow_redirects=False, timeout=10)
    assert to_idp.status_code == 303
    back = stepped.browser.get(to_idp.headers["Location"], allow_redirects=False, timeout=10)
    callback = back.headers["Location"]
    # the same callback from a browser that never opened the link: no state cookie
    _refused(stepped, request_id, stepped.open(callback, requests.Session()), "state_mismatch")
    # the right browser, but a state that is not the one it was given
    forged = callback.replace("state=", "state=x")
    _refused(stepped, request_id, stepped.open(forged), "state_mismatch")


def test_the_requester_cannot_even_start_a_step_up(stepped: StepUpBot) -> None:
    request_id = _request(stepped)
    assert stepped.bot.send.click("approve_request", request_id, BOB).status == 200
    said = stepped.bot.slack.wait_for("chat.postEphemeral", lambda a: a.get("user") == BOB)
    assert "can't approve your own request" in said[-1]["text"]
    assert stepped.events("step_up_started") == []


def test_pages_escape_what_they_show_and_never_echo_the_token(stepped: StepUpBot) -> None:
    page = stepped.open(f"{stepped.public_url}/step-up/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert "<script>" not in page.text and "alert(1)" not in page.text
    assert page.headers["Cache-Control"] == "no-store"


def test_links_are_forgotten_an_hour_after_they_expire_and_stay_refused(
    stepped: StepUpBot,
) -> None:
    request_id = _request(stepped)
    link = stepped.click_approve(request_id, LEAD1)
    clock.travel(timedelta(minutes=5, seconds=1))
    assert forget_old_step_up_logins(stepped.bot.ctx) == 0  # expired, kept a while
    clock.travel(timedelta(hours=1))
    assert forget_old_step_up_logins(stepped.bot.ctx) == 1
    _refused(stepped, request_id, stepped.open(link), "unknown_token")
