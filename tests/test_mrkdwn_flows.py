"""Everything the bot says in Slack renders as written: the real bot is driven through every
surface (slash-command answers, the request modal, the card in each state, its thread, DMs,
refusals, the Home tab) with a policy whose names hold `<`, `>` and `&` and with requests
whose ticket and reason hold `<!channel>`, a link and a mention. Then every Web API call the
fake Slack recorded and every answer the bot gave is checked (tests/mrkdwn.py): in mrkdwn,
only the control sequences the bot builds on purpose may stay raw."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.jobs.requests import escalate_unreviewed_breakglass, lapse_stale_requests
from app.models import SessionState
from app.operations.request_access import REASON_MAX, TICKET_MAX
from tests.blocks_helpers import offers, shows
from tests.conftest import ALICE, BOB, LEAD1, LEAD2, MALLORY, BotHarness, eventually, make_settings
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import Answer, select, text_input
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.mrkdwn import report, texts_of_answer, texts_of_call, write_hostile_policy

HOSTILE = "<!channel> <http://evil|x> & <@U0BOB>"
TICKET = "<!channel>&<http://evil|x><@U0BOB>"  # one word: the quick form's ticket


@pytest.fixture
def render_bot(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> Iterator[BotHarness]:
    policy = write_hostile_policy(tmp_path / "policy.yml", webhook.url)
    harness = BotHarness(make_settings(tmp_path, slack, policy), slack)
    yield harness
    harness.stop()


class Said:
    """The bot's answers to the requests a test sent (acks), to be checked with the calls."""

    def __init__(self, bot: BotHarness) -> None:
        self.bot = bot
        self.answers: list[tuple[str, str]] = []

    def keep(self, where: str, answer: Answer) -> str:
        assert answer.status == 200, (where, answer)
        self.answers.append((where, answer.text))
        return answer.text

    def command(self, text: str, user: str = BOB) -> str:
        return self.keep(f"/prod-access {text[:60]!r} by {user}", self.bot.send.command(text, user))

    def click(self, action: str, value: str, user: str, channel: str = "C0APPROVALS") -> str:
        answer = self.bot.send.click(action, value, user, channel=channel)
        return self.keep(f"click {action} by {user}", answer)

    def submit(self, view: dict, values: dict, user: str = BOB) -> str:
        return self.keep(
            f"submit {view.get('callback_id')}", self.bot.send.submit(view, values, user)
        )

    def home(self, user: str) -> None:
        event = {"type": "app_home_opened", "user": user, "tab": "home"}
        self.keep(f"app_home_opened by {user}", self.bot.send.interaction_event(event))
        self.bot.slack.wait_for("views.publish", lambda a: a["user_id"] == user)


def _settle(slack: FakeSlack, quiet: float = 0.5, timeout: float = 20.0) -> None:
    """Wait until the bot has stopped calling Slack (its work after the ack is done)."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        count = len(slack.calls)
        if count == seen:
            return
        seen = count
        time.sleep(quiet)


def _assert_renders_as_written(said: Said, methods: set[str]) -> None:
    _settle(said.bot.slack)
    calls = said.bot.slack.calls
    texts = [
        (f"{c.method} #{n}", t)
        for n, c in enumerate(calls)
        for t in texts_of_call(c.method, c.args)
    ]
    texts += [(where, t) for where, body in said.answers for t in texts_of_answer(body)]
    assert methods <= {c.method for c in calls}  # every surface was reached (not vacuous)
    assert len(texts) > 20
    problems = report(texts)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def _latest(bot: BotHarness, other_than: tuple[str, ...] = ()) -> str:
    return eventually(
        lambda: (rid := bot.latest_request_id()) not in other_than and rid, what="a new request"
    )


def _modal(bot: BotHarness, callback: str, metadata: str) -> dict:
    return bot.slack.wait_for(
        "views.open",
        lambda a: (
            a["view"].get("callback_id") == callback
            and a["view"].get("private_metadata") == metadata
        ),
    )[-1]["view"]


def test_slash_command_answers_and_the_request_modal_render_as_written(
    render_bot: BotHarness,
) -> None:
    bot, said = render_bot, Said(render_bot)
    assert 'Orders &lt;API&gt; &amp; "co"' in said.command("help", BOB)
    assert "None: you are not on the requesters list" in said.command("help", MALLORY)
    said.command("list")
    typed = said.command("<@U0LEAD1> read 30m PAY-1 fix")  # what was typed stays text
    assert "Unknown system '&lt;@U0LEAD1&gt;'" in typed and "<@U0LEAD1>" not in typed
    asked = said.command("orders-api read 30m PAY-1 fix", MALLORY)  # not a requester: who to ask
    assert "Ask one of its approvers (<@U0LEAD1>, <@U0LEAD2>) to add you." in asked
    for text in (
        "orders-api",  # missing fields
        "orders-api write",
        "nope read 30m PAY-1 fix",  # unknown system
        "orders-api nope 30m PAY-1 fix",  # unknown role
        "orders-api read <soon> PAY-1 fix",  # bad duration
        "orders-api read 0m PAY-1 fix",
        "orders-api read 3h PAY-1 fix",  # longer than the role allows
        f"orders-api read 30m {'T' * (TICKET_MAX + 1)} fix",  # ticket too long
        "orders-staging write 1h <PAY-1> fix",  # ticket does not match the pattern
        f"orders-api read 30m PAY-1 {'x' * (REASON_MAX + 1)}",  # reason too long
        "--breakglass orders-staging write 1h INC-1 fix",  # no break-glass on that system
        "--breakglass orders-api write 1h INC-1 down",  # ALICE is not on the list (below)
        "cancel",
        "cancel <R-NOPE>&",
        "done",
        "done <S-nope>&",
    ):
        said.command(text, ALICE if text.startswith("--breakglass orders-api") else BOB)

    said.command("", BOB)  # the modal, then a system, then a role
    modal = bot.slack.wait_for("views.open")[-1]["view"]
    values = {"system": select("orders-api", "system_select")}
    said.keep("select system", bot.send.modal_select(modal, values, "system_select", "system", BOB))
    view = bot.slack.wait_for("views.update")[-1]["view"]
    role_block = next(b["block_id"] for b in view["blocks"] if b["block_id"].startswith("role:"))
    values[role_block] = select("read", "role_select")
    said.keep("select role", bot.send.modal_select(view, values, "role_select", role_block, BOB))
    bot.slack.wait_for("views.update", count=2)
    said.command("", MALLORY)  # a modal with nothing to choose
    bot.slack.wait_for("views.open", count=2)
    _assert_renders_as_written(said, {"views.open", "views.update"})


def test_a_request_from_card_to_closeout_renders_as_written(render_bot: BotHarness) -> None:
    bot, said = render_bot, Said(render_bot)
    request_id = bot.quick_request(f"orders-api write 1h {TICKET} {HOSTILE}", BOB)
    said.click("approve_request", request_id, BOB)  # refused: the requester's own request
    said.click("approve_request", request_id, MALLORY)  # refused: names the approvers
    refusal = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == MALLORY)[-1]
    assert refusal["text"] == (
        ':no_entry: Only the approvers of Orders &lt;API&gt; &amp; "co" write can approve this: '
        "<@U0LEAD1>, <@U0LEAD2>."
    )
    said.home(LEAD1)  # waiting for their approval
    said.home(BOB)  # a pending request
    said.command("list")
    said.click("approve_request", request_id, LEAD1)
    session = bot.wait_session(request_id, SessionState.active)
    said.click("approve_request", request_id, LEAD2)  # refused: already approved
    late = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == LEAD2)[-1]
    assert late["text"] == f":no_entry: Request {request_id} was already approved by <@U0LEAD1>."
    said.command("list")

    said.click("extend_session", session.id, BOB, channel="D0BOB")
    modal = _modal(bot, "extend", session.id)
    said.submit(
        modal,
        {
            "duration": select("30m", "duration_select"),
            "reason": text_input(HOSTILE, "reason_input"),
        },
    )
    extension = _latest(bot, (request_id,))
    eventually(lambda: bot.request(extension).card_ts, what="extension card")
    said.click("approve_request", extension, LEAD2)
    eventually(lambda: bot.request(extension).state == "approved", what="extension approved")
    said.home(BOB)  # active access with time left, history

    said.click("end_session", session.id, BOB, channel="D0BOB")
    bot.wait_session(request_id, SessionState.ended)
    said.click("open_closeout", session.id, BOB, channel="D0BOB")
    closeout = _modal(bot, "closeout", session.id)
    said.submit(
        closeout,
        {
            "changes": text_input(HOSTILE, "changes_input"),
            "followups": text_input("<b>&</b>", "followups_input"),
        },
    )
    bot.slack.wait_for("chat.postMessage", lambda a: "Closeout" in a.get("text", ""))

    denied = bot.quick_request(f"orders-api read 15m PAY-2 {HOSTILE}", BOB)
    said.keep("deny", bot.deny(denied, LEAD1, "<script>&</script> use the replica"))
    eventually(lambda: bot.request(denied).state == "denied", what="denial")
    cancelled = bot.quick_request("orders-api read 15m PAY-3 look", BOB)
    said.command(f"cancel {cancelled}")
    by_home = bot.quick_request("orders-api read 15m PAY-4 look", BOB)
    said.click("cancel_request", by_home, BOB, channel="D0BOB")
    eventually(lambda: bot.request(by_home).state == "cancelled", what="cancel from Home")
    lapsing = bot.quick_request("orders-api read 15m PAY-5 look", BOB)
    clock.travel(timedelta(hours=1, minutes=1))
    assert lapse_stale_requests(bot.ctx) == [lapsing]
    said.home(BOB)  # history of every outcome
    _assert_renders_as_written(
        said, {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open"}
    )


def test_break_glass_staging_and_provider_failures_render_as_written(
    render_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    bot, said = render_bot, Said(render_bot)
    said.command(f"--breakglass orders-api write 1h INC-7 {HOSTILE}", BOB)
    glass = _latest(bot)
    bot.wait_session(glass, SessionState.active)
    clock.travel(timedelta(minutes=16))
    assert escalate_unreviewed_breakglass(bot.ctx) == [glass]
    bot.slack.wait_for("chat.postMessage", lambda a: a["channel"] == "C0INCIDENTS")
    said.home(LEAD1)  # break-glass to review
    said.click("breakglass_ack", glass, BOB)  # refused: not the one who broke the glass
    said.click("breakglass_ack", glass, LEAD1)
    eventually(lambda: bot.request(glass).review_state == "acknowledged", what="review")
    said.click("breakglass_flag", glass, LEAD2)  # refused: already reviewed
    late = bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == LEAD2)[-1]
    assert late["text"] == f":no_entry: Request {glass} is already acknowledged by <@U0LEAD1>."

    said.command("--breakglass orders-api write 30m INC-8 down", BOB)
    flagged = _latest(bot, (glass,))
    bot.wait_session(flagged, SessionState.active)
    said.click("breakglass_flag", flagged, LEAD2)
    bot.wait_session(flagged, SessionState.ended)

    said.command(f"orders-staging write 1h PAY-4 {HOSTILE}", BOB)
    staging = _latest(bot, (glass, flagged))
    bot.wait_session(staging, SessionState.active)

    # Reads from here on: BOB still holds orders-api write, which a check would find in place.
    webhook.respond_with(503)  # the grant fails
    failed = bot.quick_request("orders-api read 15m PAY-6 look", BOB)
    said.click("approve_request", failed, LEAD1)
    bot.wait_session(failed, SessionState.grant_failed)
    webhook.respond_with(500, times=2)  # the grant's answer is lost, and so is the check's
    unknown = bot.quick_request("orders-api read 15m PAY-7 look", BOB)
    said.click("approve_request", unknown, LEAD1)
    bot.wait_session(unknown, SessionState.grant_unknown)

    revoking = bot.granted("orders-api read 15m PAY-8 look", BOB)
    webhook.respond_with(500)  # the revoke fails
    said.click("end_session", revoking.id, BOB, channel="D0BOB")
    bot.wait_session(revoking.request_id, SessionState.revoke_failing)
    bot.slack.wait_for("chat.postMessage", lambda a: "Revoke failed" in a.get("text", ""))
    bot.ctx.notify.drift_found(revoking, f"found {HOSTILE} at the provider")
    said.home(BOB)
    _assert_renders_as_written(said, {"chat.postMessage", "chat.update", "views.publish"})


def test_a_staging_system_is_named_staging_on_its_card_and_in_dms(
    render_bot: BotHarness,
) -> None:
    bot = render_bot
    assert bot.send.command("orders-staging write 1h PAY-4 try it", BOB).status == 200
    staging = _latest(bot)
    bot.wait_session(staging, SessionState.active)
    card = bot.slack.wait_for("chat.update", lambda a: shows(a["blocks"], "Active"))[-1]
    assert card["blocks"][0]["type"] == "header"
    assert card["blocks"][0]["text"]["text"] == "Staging access request"
    granted = bot.slack.wait_for(
        "chat.postMessage", lambda a: offers(a.get("blocks"), "end_session")
    )
    dm = granted[-1]
    assert "staging access" in dm["text"] and "production" not in dm["text"]
    assert shows(dm["blocks"], "staging access to *Orders staging &lt;beta&gt; &amp; co*")

    production = bot.granted("orders-api read 15m PAY-5 look", BOB)
    card = bot.slack.wait_for("chat.update", lambda a: shows(a["blocks"], production.request_id))
    assert card[-1]["blocks"][0]["text"]["text"] == "Production access request"
    dm = bot.slack.wait_for("chat.postMessage", lambda a: shows(a.get("blocks"), production.id))[-1]
    assert "production access" in dm["text"] and "staging" not in dm["text"]
