"""Approval policy and the Slack surfaces around it, end to end: N-of-M approvals, user-group
approvers, who may request, staging and auto-approved roles, on-call auto-approval (a fake
PagerDuty), break-glass with retro-review and escalation, extensions, request TTL, cancel, the
App Home tab, closeout escalation, long reasons. Signed requests in, the fake Slack Web API out,
the webhook receiver as the system being granted.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import audit, clock
from app.db import transaction
from app.jobs.requests import escalate_unreviewed_breakglass, lapse_stale_requests
from app.models import RequestState, SessionState
from app.policy import PolicyError, load_policy
from tests.blocks_helpers import message_texts, offers, option_values, shows, texts
from tests.conftest import (
    ALICE,
    BOB,
    LEAD1,
    LEAD2,
    MALLORY,
    BotHarness,
    eventually,
    make_settings,
    write_policy,
)
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import select, text_input
from tests.fakes.webhook_receiver import WebhookReceiver

PD_TOKEN = "pd-test-token-0123456789"


def _system(system_id: str, url: str, body: str) -> str:
    """One more system for the test policy (webhook provider, the tests' secret)."""
    head = (
        f"  - id: {system_id}\n"
        f"    name: {system_id.title()}\n"
        "    provider: webhook\n"
        f"    config: {{url: '{url}', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}\n"
        "    identity: '{email}'\n"
        "    email_domains: [example.com]\n"
    )
    return head + textwrap.indent(textwrap.dedent(body), "    ")


MakeBot = Callable[..., BotHarness]


@pytest.fixture
def make_bot(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> Iterator[MakeBot]:
    """Build the bot with extra systems in its policy (SQLite unless a database URL is given)."""
    bots: list[BotHarness] = []

    def make(systems: str = "", database_url: str | None = None, **settings: Any) -> BotHarness:
        policy = write_policy(tmp_path / "policy.yml", webhook.url, extra_systems=systems)
        values = make_settings(tmp_path, slack, policy, database_url).model_dump()
        values.update(settings)
        from app.config import Settings

        harness = BotHarness(Settings(_env_file=None, **values), slack)  # type: ignore[call-arg]
        bots.append(harness)
        return harness

    yield make
    for harness in bots:
        harness.stop()


def _blocks(args: dict) -> str:
    """A message's texts (blocks, then the fallback text), one per line."""
    return "\n".join(message_texts(args))


def _events(bot: BotHarness, request_id: str) -> list[tuple[str, str]]:
    with transaction(bot.ctx.db) as db:
        return [(e.event, e.actor) for e in audit.events(db, request_id)]


def _card(bot: BotHarness, request_id: str, needle: str) -> str:
    """The latest card update for this request that contains `needle`."""
    update = bot.slack.wait_for(
        "chat.update", lambda a: request_id in _blocks(a) and needle in _blocks(a)
    )[-1]
    return _blocks(update)


def _thread(bot: BotHarness, request_id: str, needle: str, **match: Any) -> dict:
    ts = bot.request(request_id).card_ts
    return bot.slack.wait_for(
        "chat.postMessage",
        lambda a: (
            a.get("thread_ts") == ts
            and needle in a["text"]
            and all(a.get(k) == v for k, v in match.items())
        ),
    )[-1]


def _ask(bot: BotHarness, text: str, user: str) -> str:
    """A quick-form request whose answer is an acceptance; returns the request id."""
    answer = bot.send.command(text, user)
    assert answer.status == 200 and "R-" in answer.text, answer.text
    return eventually(lambda: _card_posted(bot), what="the card to be posted")


def _card_posted(bot: BotHarness) -> str | None:
    request_id = bot.latest_request_id()
    return request_id if bot.request(request_id).card_ts else None


# --- N of M ----------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_approvals_needed_requester_and_repeat_approver_not_counted(
    make_bot: MakeBot, webhook: WebhookReceiver, request: pytest.FixtureRequest, database: str
) -> None:
    url = request.getfixturevalue("pg_database") if database == "postgres" else None
    bot = make_bot(
        _system(
            "payments",
            webhook.url,
            f"""\
            approvers: [{ALICE}, {LEAD1}, {LEAD2}]
            roles:
              - {{id: write, grant: payments-admin, approvals_required: 2}}
            """,
        ),
        url,
    )
    request_id = bot.quick_request("payments write 1h PAY-1 rotate keys", ALICE)
    card = bot.slack.wait_for("chat.postMessage", lambda a: request_id in _blocks(a))[0]
    assert "0 of 2 approvals" in _blocks(card)

    bot.send.click("approve_request", request_id, ALICE)  # the requester is an approver too
    own = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == ALICE)[0]
    assert "can't approve your own request" in own["text"]

    bot.send.click("approve_request", request_id, LEAD1)
    assert "1 of 2 approvals" in _card(bot, request_id, "1 of 2 approvals")
    assert "<@U0LEAD1>" in _card(bot, request_id, "1 of 2 approvals")
    _thread(bot, request_id, "approved (1 of 2)")
    bot.send.click("approve_request", request_id, LEAD1)  # again: counted once
    again = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == LEAD1)[0]
    assert "already approved" in again["text"] and "1 more" in again["text"]
    assert bot.request(request_id).state == RequestState.pending
    assert bot.session_for(request_id) is None and webhook.actions() == []

    bot.send.click("approve_request", request_id, LEAD2)
    bot.wait_session(request_id, SessionState.active)
    assert webhook.actions().count("grant") == 1
    card = _card(bot, request_id, "Active")
    assert "<@U0LEAD1>, <@U0LEAD2>" in card and "approve_request" not in card
    assert _events(bot, request_id)[:3] == [
        ("requested", ALICE),
        ("approval_recorded", LEAD1),
        ("approved", LEAD2),
    ]


def test_policy_refuses_more_approvals_than_approvers(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path / "policy.yml",
        "http://127.0.0.1:9/",
        extra_systems=_system(
            "payments",
            "http://127.0.0.1:9/",
            f"""\
            approvers: [{LEAD1}]
            roles:
              - {{id: write, grant: g, approvals_required: 2}}
            """,
        ),
    )
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert "policy.yml:" in str(error.value)
    assert "needs 2 approvals but only 1 approver(s) are listed" in str(error.value)


def test_policy_names_a_bad_approver_entry(tmp_path: Path) -> None:
    path = write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/", approvers=("lead1",))
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert "approvers" in str(error.value) and "user group handle (@sre-leads)" in str(error.value)


# --- user groups and requesters --------------------------------------------------------------


def test_user_group_approvers_are_resolved_through_slack(
    make_bot: MakeBot, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    slack.groups = {"sre-leads": {"id": "S0SRELEADS", "users": [LEAD2]}}
    bot = make_bot(
        _system(
            "billing",
            webhook.url,
            """\
            approvers: ['@sre-leads']
            roles:
              - {id: read, grant: billing-viewer}
            """,
        )
    )
    request_id = bot.quick_request("billing read 30m PAY-2 check invoices", BOB)
    card = bot.slack.wait_for("chat.postMessage", lambda a: request_id in _blocks(a))[0]
    assert "<!subteam^S0SRELEADS>" in _blocks(card)
    bot.send.click("approve_request", request_id, LEAD1)  # an approver elsewhere, not in group
    refusal = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == LEAD1)[0]
    assert "Only the approvers of Billing read" in refusal["text"]
    assert "<!subteam^S0SRELEADS>" in refusal["text"]
    bot.send.click("approve_request", request_id, LEAD2)
    bot.wait_session(request_id, SessionState.active)
    assert slack.calls_to("usergroups.users.list")[0]["usergroup"] == "S0SRELEADS"


def test_unknown_group_counts_as_nobody(
    make_bot: MakeBot, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    bot = make_bot(
        _system(
            "billing",
            webhook.url,
            """\
            approvers: ['@gone-team']
            roles:
              - {id: read, grant: billing-viewer}
            """,
        )
    )
    request_id = bot.quick_request("billing read 30m PAY-2 check invoices", BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == LEAD1)
    assert bot.request(request_id).state == RequestState.pending


def test_only_listed_requesters_may_ask_and_see_the_system(
    make_bot: MakeBot, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    slack.groups = {"payments-oncall": {"id": "S0PAYONCALL", "users": [ALICE]}}
    bot = make_bot(
        _system(
            "vault",
            webhook.url,
            f"""\
            approvers: [{LEAD1}]
            requesters: ['@payments-oncall', {LEAD2}]
            roles:
              - {{id: read, grant: vault-reader}}
            """,
        )
    )
    refused = bot.send.command("vault read 30m PAY-3 read a secret", BOB)
    assert "not on the list of people who may request vault" in refused.text
    assert bot.send.command("help", BOB).text.count("`vault`") == 0
    assert "`vault`" in bot.send.command("help", ALICE).text
    bot.send.command("", BOB)
    modal = bot.slack.wait_for("views.open")[-1]["view"]
    systems = option_values(modal)
    assert "vault" not in systems and "orders-api" in systems
    assert not shows(modal, "vault")
    assert _ask(bot, "vault read 30m PAY-3 read a secret", ALICE)


# --- decided by the policy -------------------------------------------------------------------


def test_staging_tier_and_auto_approve_roles_grant_without_clicks(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot(
        _system(
            "orders-staging",
            webhook.url,
            f"""\
            tier: staging
            approvers: [{LEAD1}]
            roles:
              - {{id: write, grant: staging-admin}}
            """,
        )
        + _system(
            "metrics",
            webhook.url,
            f"""\
            approvers: [{LEAD1}]
            roles:
              - {{id: read, grant: metrics-viewer, auto_approve: true, max_duration: 30m}}
              - {{id: write, grant: metrics-admin}}
            """,
        )
    )
    answer = bot.send.command("orders-staging write 1h PAY-4 try the migration", BOB)
    assert "approved by the policy (staging tier): granting now" in answer.text, answer.text
    staging = eventually(lambda: _card_posted(bot), what="the card to be posted")
    session = bot.wait_session(staging, SessionState.active)
    assert session.expires_at is not None
    assert "Auto-approved" in _card(bot, staging, "staging tier")
    auto = _ask(bot, "metrics read 30m PAY-5 look at a graph", BOB)
    bot.wait_session(auto, SessionState.active)
    write_answer = bot.send.command("metrics write 1h PAY-6 change a dashboard", BOB)
    assert "on its way to the approvers" in write_answer.text
    write = eventually(lambda: _card_posted(bot), what="the card to be posted")
    assert bot.request(write).state == RequestState.pending  # only the read role is automatic
    assert ("auto_approved", audit.SYSTEM_ACTOR) in _events(bot, staging)
    assert webhook.actions().count("grant") == 2


def test_on_call_requester_is_approved_at_once_and_pagerduty_down_falls_back(
    make_bot: MakeBot, webhook: WebhookReceiver, slack: FakeSlack
) -> None:
    with FakePagerDuty(PD_TOKEN) as pagerduty:
        pagerduty.set_on_call("PSCHED1", ["Bob@Example.com"])
        bot = make_bot(
            _system(
                "payments",
                webhook.url,
                f"""\
                approvers: [{LEAD1}]
                roles:
                  - {{id: write, grant: payments-admin, auto_approve_oncall: PSCHED1}}
                  - {{id: deploy, grant: payments-deployer, auto_approve_oncall: PSCHED2}}
                """,
            ),
            pagerduty_token=PD_TOKEN,
            pagerduty_api_url=pagerduty.url,
        )
        on_call = _ask(bot, "payments write 1h INC-1 failing charges", BOB)
        bot.wait_session(on_call, SessionState.active)
        assert bot.request(on_call).decision_note == "on call (PSCHED1)"
        assert "Auto-approved: on call" in _card(bot, on_call, "on call")

        not_on_call = _ask(bot, "payments write 1h INC-1 failing charges", ALICE)
        assert bot.request(not_on_call).state == RequestState.pending

    # PagerDuty is gone now (PSCHED2 was never asked, so nothing is cached): the request waits
    # for an approver, never a grant.
    down = _ask(bot, "payments deploy 1h INC-2 still failing", BOB)
    assert bot.request(down).state == RequestState.pending
    assert bot.session_for(down) is None
    assert ("oncall_check_failed", audit.SYSTEM_ACTOR) in _events(bot, down)
    assert webhook.actions().count("grant") == 1


# --- break-glass -----------------------------------------------------------------------------

BREAKGLASS_SYSTEM = f"""\
approvers: [{LEAD1}, {LEAD2}]
breakglass: {{users: [{BOB}], max_duration: 2h, review_within: 15m,
             escalation_channel: C0INCIDENTS}}
roles:
  - {{id: write, grant: checkout-admin, max_duration: 4h}}
"""


def test_during_a_burst_break_glass_is_granted_at_once_while_cards_for_approvers_wait(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    """Acks first: while Slack requests are still being answered, a request the approvers will
    decide waits for its card, but a break-glass grant, which its requester is waiting on, goes
    ahead."""
    bot = make_bot(_system("checkout-db", webhook.url, BREAKGLASS_SYSTEM))
    with bot.bot.later.answering():  # another Slack request is still being answered
        assert bot.send.command("checkout-db write 1h PAY-8 slow queries", BOB).status == 200
        breakglass = bot.send.command("--breakglass checkout-db write 1h INC-8 down", BOB)
        assert "granting now" in breakglass.text
        webhook.wait_for(action="grant", timeout=5)
        cards = [c for c in bot.slack.calls_to("chat.postMessage") if "PAY-8" in _blocks(c)]
        assert cards == []  # the card for the approvers waits for the pause
    bot.slack.wait_for("chat.postMessage", lambda a: "PAY-8" in _blocks(a))
    assert webhook.actions() == ["grant"]


def test_break_glass_grants_at_once_and_escalates_until_reviewed(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot(_system("checkout-db", webhook.url, BREAKGLASS_SYSTEM))
    answer = bot.send.command("--breakglass checkout-db write 1h INC-7 payments down", BOB)
    assert "Break-glass" in answer.text and "granting now" in answer.text
    request_id = eventually(lambda: _card_posted(bot), what="the card")
    bot.wait_session(request_id, SessionState.active)
    assert webhook.actions() == ["grant"]
    card = bot.slack.wait_for(
        "chat.update", lambda a: request_id in _blocks(a) and "BREAK-GLASS" in _blocks(a)
    )[-1]["blocks"]
    assert offers(card, "breakglass_ack") and offers(card, "breakglass_flag")
    assert _events(bot, request_id)[:2] == [("requested", BOB), ("breakglass_granted", BOB)]

    clock.travel(timedelta(minutes=14))
    assert escalate_unreviewed_breakglass(bot.ctx) == []
    clock.travel(timedelta(minutes=2))
    assert escalate_unreviewed_breakglass(bot.ctx) == [request_id]
    nudge = _thread(bot, request_id, "Break-glass not reviewed", reply_broadcast=True)
    assert "<@U0LEAD1>" in nudge["text"] and "<@U0LEAD2>" in nudge["text"]
    bot.slack.wait_for("chat.postMessage", lambda a: a["channel"] == "C0INCIDENTS")
    assert escalate_unreviewed_breakglass(bot.ctx) == []  # not again until review_within
    clock.travel(timedelta(minutes=16))
    assert escalate_unreviewed_breakglass(bot.ctx) == [request_id]  # and repeats

    bot.send.click("breakglass_ack", request_id, BOB)  # not by the one who broke the glass
    bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == BOB)
    bot.send.click("breakglass_ack", request_id, LEAD1)
    eventually(lambda: bot.request(request_id).review_state == "acknowledged", what="review")
    assert "Reviewed" in _card(bot, request_id, "(acknowledged) by <@U0LEAD1>")
    clock.travel(timedelta(hours=1))
    assert escalate_unreviewed_breakglass(bot.ctx) == []
    reviewed = [e for e in _events(bot, request_id) if e[0] == "breakglass_reviewed"]
    assert reviewed == [("breakglass_reviewed", LEAD1)]
    with transaction(bot.ctx.db) as db:
        detail = next(
            e.detail for e in audit.events(db, request_id) if e.event == "breakglass_reviewed"
        )
    assert detail["in_time"] is False and detail["outcome"] == "acknowledged"


def test_escalation_does_not_fire_after_an_acknowledge(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot(_system("checkout-db", webhook.url, BREAKGLASS_SYSTEM))
    bot.send.command("--breakglass checkout-db write 30m INC-8 db stuck", BOB)
    request_id = eventually(lambda: _card_posted(bot), what="the card")
    bot.wait_session(request_id, SessionState.active)
    bot.send.click("breakglass_ack", request_id, LEAD2)
    eventually(lambda: bot.request(request_id).review_state == "acknowledged", what="review")
    clock.travel(timedelta(minutes=20))
    assert escalate_unreviewed_breakglass(bot.ctx) == []
    assert not [
        c for c in bot.slack.calls_to("chat.postMessage") if "not reviewed" in c.get("text", "")
    ]


def test_flagging_a_break_glass_ends_the_access_at_once(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot(_system("checkout-db", webhook.url, BREAKGLASS_SYSTEM))
    bot.send.command("--breakglass checkout-db write 1h INC-9 hotfix", BOB)
    request_id = eventually(lambda: _card_posted(bot), what="the card")
    bot.wait_session(request_id, SessionState.active)
    bot.send.click("breakglass_flag", request_id, LEAD1)
    session = bot.wait_session(request_id, SessionState.ended)
    assert session.end_reason == "flagged" and webhook.actions() == ["grant", "revoke"]
    assert "Flagged" in _card(bot, request_id, "Flagged")


def test_break_glass_refused_for_someone_not_on_the_list(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot(_system("checkout-db", webhook.url, BREAKGLASS_SYSTEM))
    answer = bot.send.command("--breakglass checkout-db write 1h INC-7 let me in", MALLORY)
    assert "not on the break-glass list for checkout-db" in answer.text
    too_long = bot.send.command("--breakglass checkout-db write 3h INC-7 long one", BOB)
    assert "longer than the 2h allowed for break-glass" in too_long.text
    assert webhook.actions() == []
    with transaction(bot.ctx.db) as db:
        assert list(audit.events(db)) == []


def test_break_glass_box_in_the_modal_only_for_listed_people(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot(_system("checkout-db", webhook.url, BREAKGLASS_SYSTEM))
    for user, offered in ((BOB, True), (MALLORY, False)):
        bot.send.command("", user)
        modal = bot.slack.wait_for("views.open")[-1]["view"]
        values = {"system": select("checkout-db", "system_select")}
        bot.send.modal_select(modal, values, "system_select", "system", user)
        rebuilt = bot.slack.wait_for("views.update", lambda a: offers(a["view"], "role_select"))[
            -1
        ]["view"]
        assert shows(rebuilt, "Incident — grant now") is offered
        bot.slack.clear()


# --- extension -------------------------------------------------------------------------------


def _extend(bot: BotHarness, session_id: str, duration: str, user: str = BOB) -> Any:
    bot.send.click("extend_session", session_id, user, channel="D0BOB")
    modal = bot.slack.wait_for(
        "views.open", lambda a: a["view"].get("private_metadata") == session_id
    )[-1]["view"]
    values = {
        "duration": select(duration, "duration_select"),
        "reason": text_input("need to finish the backfill", "reason_input"),
    }
    return bot.send.submit(modal, values, user)


def test_extension_approved_moves_the_end_and_denied_keeps_it(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot()
    first = bot.quick_request("orders-api write 1h PAY-10 backfill", BOB)
    bot.send.click("approve_request", first, LEAD1)
    session = bot.wait_session(first, SessionState.active)
    assert session.expires_at is not None
    end = session.expires_at

    assert _extend(bot, session.id, "30m").text == ""
    extension = eventually(lambda: _card_posted(bot), what="the extension card")
    assert extension != first
    card = bot.slack.wait_for("chat.postMessage", lambda a: extension in _blocks(a))[0]
    assert "Extension request" in _blocks(card) and session.id in _blocks(card)
    _thread(bot, first, "asked for 30m more")
    assert bot.session_for(first).expires_at == end  # nothing moves before approval

    bot.deny(extension, LEAD2, "finish tomorrow")
    eventually(lambda: bot.request(extension).state == "denied", what="denial")
    assert bot.session_for(first).expires_at == end

    _extend(bot, session.id, "1h")
    second = eventually(
        lambda: (rid := _card_posted(bot)) not in (first, extension) and rid, what="card"
    )
    bot.send.click("approve_request", second, LEAD1)
    eventually(lambda: bot.session_for(first).expires_at == end + timedelta(hours=1), what="end")
    _thread(bot, first, "Extended until")
    assert ("extension_approved", LEAD1) in _events(bot, second)
    assert webhook.actions().count("grant") == 1  # the access itself is untouched


def test_extension_beyond_max_total_is_refused_inline(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    bot = make_bot()
    first = bot.quick_request("orders-api write 2h PAY-11 long job", BOB)  # max 2h, total 4h
    bot.send.click("approve_request", first, LEAD1)
    session = bot.wait_session(first, SessionState.active)
    answer = _extend(bot, session.id, "4h")
    errors = answer.json()
    assert errors["response_action"] == "errors"
    assert "At most 2h more is possible" in errors["errors"]["duration"]
    assert _extend(bot, session.id, "2h", user=ALICE).json()["response_action"] == "errors"


# --- request TTL and cancel ------------------------------------------------------------------


def test_undecided_request_lapses_after_request_ttl(make_bot: MakeBot) -> None:
    bot = make_bot()
    request_id = bot.quick_request("orders-api read 15m PAY-12 look", BOB)
    clock.travel(timedelta(minutes=59))
    assert lapse_stale_requests(bot.ctx) == []
    clock.travel(timedelta(minutes=2))
    assert lapse_stale_requests(bot.ctx) == [request_id]
    assert bot.request(request_id).state == RequestState.lapsed
    card = _card(bot, request_id, "Lapsed")
    assert "approve_request" not in card
    bot.slack.wait_for("chat.postMessage", lambda a: a["channel"] == BOB and "lapsed" in a["text"])
    bot.send.click("approve_request", request_id, LEAD1)  # too late
    late = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == LEAD1)[0]
    assert "already lapsed" in late["text"]


def test_requester_can_cancel_a_pending_request(make_bot: MakeBot) -> None:
    bot = make_bot()
    request_id = bot.quick_request("orders-api read 15m PAY-13 look", BOB)
    assert (
        "only the person who asked" in bot.send.command(f"cancel {request_id}", ALICE).text.lower()
    )
    assert "is cancelled" in bot.send.command(f"cancel {request_id}", BOB).text
    assert "Cancelled" in _card(bot, request_id, "Cancelled")
    assert bot.request(request_id).state == RequestState.cancelled


# --- App Home --------------------------------------------------------------------------------


def _home(bot: BotHarness, user: str, needle: str) -> dict:
    bot.send.interaction_event({"type": "app_home_opened", "user": user, "tab": "home"})
    return bot.slack.wait_for(
        "views.publish", lambda a: a["user_id"] == user and shows(a["view"], needle)
    )[-1]["view"]


def _buttons(view: dict) -> list[tuple[str, str]]:
    found = []
    for block in view["blocks"]:
        elements = block.get("elements", []) if block["type"] == "actions" else []
        if block.get("accessory"):
            elements = [block["accessory"]]
        found += [(e["action_id"], e.get("value", "")) for e in elements if e["type"] == "button"]
    return found


def test_home_tab_for_a_requester_and_for_an_approver(make_bot: MakeBot) -> None:
    bot = make_bot()
    first = bot.quick_request("orders-api read 15m PAY-14 look", BOB)
    bot.send.click("approve_request", first, LEAD1)
    session = bot.wait_session(first, SessionState.active)
    pending = bot.quick_request("orders-api write 1h PAY-15 fix", BOB)
    denied = bot.quick_request("orders-api write 1h PAY-16 no", BOB)
    bot.deny(denied, LEAD2)
    eventually(lambda: bot.request(denied).state == "denied", what="denial")

    mine = _home(bot, BOB, denied)
    buttons = _buttons(mine)
    assert ("end_session", session.id) in buttons and ("extend_session", session.id) in buttons
    assert ("cancel_request", pending) in buttons
    assert not [b for b in buttons if b[0] in ("approve_request", "deny_request")]
    text = "\n".join(texts(mine))
    assert "left)" in text and "Recent history" in text and f"`{denied}`" in text

    lead = _home(bot, LEAD1, pending)
    assert ("approve_request", pending) in _buttons(lead)
    assert ("deny_request", pending) in _buttons(lead)
    assert shows(lead, "Waiting for your approval")
    stranger = _home(bot, MALLORY, "Your production access")
    assert _buttons(stranger) == []

    bot.send.click("approve_request", pending, LEAD1)  # from the Home tab: the same check
    bot.wait_session(pending, SessionState.active)
    after = bot.slack.wait_for(
        "views.publish",
        lambda a: a["user_id"] == LEAD1 and not shows(a["view"], "Waiting for your approval"),
    )[-1]["view"]
    assert ("approve_request", pending) not in _buttons(after)


# --- closeout escalation, long reasons -------------------------------------------------------


def test_missing_closeout_is_escalated_to_the_approvers_after_the_last_reminder(
    make_bot: MakeBot,
) -> None:
    bot = make_bot()
    request_id = bot.quick_request("orders-api read 15m PAY-17 look", BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    session = bot.wait_session(request_id, SessionState.active)
    bot.send.click("end_session", session.id, BOB, channel="D0BOB")
    bot.wait_session(request_id, SessionState.ended)
    for minutes in (16, 60, 24 * 60):
        clock.travel(timedelta(minutes=minutes))
        bot.reminders()
    alert = _thread(bot, request_id, "Closeout note missing", reply_broadcast=True)
    assert "<@U0BOB>" in alert["text"] and "3 reminders" in alert["text"]
    assert ("closeout_escalated", audit.SYSTEM_ACTOR) in _events(bot, request_id)


def test_long_reason_is_cut_on_the_card_and_whole_in_the_thread(make_bot: MakeBot) -> None:
    bot = make_bot()
    reason = "restart the worker " + "x" * 1500 + " THE END <!here>"
    request_id = bot.quick_request(f"orders-api read 15m PAY-18 {reason}", BOB)
    card = bot.slack.wait_for("chat.postMessage", lambda a: request_id in _blocks(a))[0]
    assert "THE END" not in _blocks(card) and "…" in _blocks(card)
    full = _thread(bot, request_id, "Full reason")
    assert "THE END &lt;!here&gt;" in full["text"] and "<!here>" not in full["text"]


# --- the access review reads what these flows wrote ------------------------------------------


def test_review_counts_n_of_m_approvals_break_glass_and_extensions(
    make_bot: MakeBot, webhook: WebhookReceiver
) -> None:
    from app.review import build_review

    bot = make_bot(
        _system("checkout-db", webhook.url, BREAKGLASS_SYSTEM)
        + _system(
            "payments",
            webhook.url,
            f"""\
            approvers: [{LEAD1}, {LEAD2}]
            roles:
              - {{id: write, grant: payments-admin, approvals_required: 2}}
            """,
        )
    )
    start = clock.now() - timedelta(minutes=1)
    paid = bot.quick_request("payments write 1h PAY-20 refund", BOB)
    bot.send.click("approve_request", paid, LEAD1)
    eventually(lambda: len(bot.request(paid).approved_by) == 1, what="first approval")
    bot.send.click("approve_request", paid, LEAD2)
    session = bot.wait_session(paid, SessionState.active)
    _extend(bot, session.id, "30m")
    extension = eventually(
        lambda: (rid := _card_posted(bot)) != paid and rid, what="extension card"
    )
    bot.send.click("approve_request", extension, LEAD1)  # the same rules: two approvals
    eventually(lambda: len(bot.request(extension).approved_by) == 1, what="first approval")
    assert bot.request(extension).state == "pending"
    bot.send.click("approve_request", extension, LEAD2)
    eventually(lambda: bot.request(extension).state == "approved", what="extension approved")
    bot.send.command("--breakglass checkout-db write 1h INC-21 outage", BOB)
    glass = eventually(
        lambda: (rid := _card_posted(bot)) not in (paid, extension) and rid, what="break-glass"
    )
    bot.wait_session(glass, SessionState.active)
    clock.travel(timedelta(minutes=20))
    bot.send.click("breakglass_ack", glass, LEAD2)  # reviewed, but late
    eventually(lambda: bot.request(glass).review_state == "acknowledged", what="review")

    with transaction(bot.ctx.db) as db:
        review = build_review(db, bot.ctx.policy, start, clock.now() + timedelta(minutes=1))
    assert review.approvals == {LEAD1: 2, LEAD2: 2}
    lines = {(line.person, line.system): line for line in review.lines}
    assert lines[(BOB, "payments")].extensions == 1
    assert lines[(BOB, "checkout-db")].breakglass == 1
    assert lines[(BOB, "checkout-db")].breakglass_not_reviewed_in_time == 1
    assert any("not reviewed in time" in item for item in review.attention)
