"""The approval card, built straight from rows in memory: what the approvers see in each state
of the request and its session, and the buttons that state offers (no Slack, no database)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.models import EndReason, RequestKind, RequestState, ReviewState, Route, SessionState
from app.policy import Policy
from app.slack.blocks.card import (
    approval_card,
    card_text,
    card_title,
    decided_line,
    end_reason_text,
    reason_cut,
)
from app.slack.text import slack_date
from tests.blocks_rows import (
    HOSTILE,
    HOSTILE_SHOWN,
    NOW,
    blocks_policy,
    buttons,
    parsed,
    request,
    session,
    text_of,
)
from tests.fakes.policy import BOB, LEAD1, LEAD2

APPROVERS = f"<@{LEAD1}>, <@{LEAD2}>"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return blocks_policy(Path(tmp_path_factory.mktemp("card")))


def test_pending_card_names_requester_and_approvers_and_offers_approve_and_deny(
    policy: Policy,
) -> None:
    pending = request(decide_by=NOW + timedelta(hours=1))
    header, facts, reason, status, actions = parsed(approval_card(policy, pending, None, APPROVERS))
    assert header["type"] == "header"
    assert header["text"]["text"] == "Production access request"
    assert [f["text"] for f in facts["fields"]] == [
        f"*Requester*\n<@{BOB}>",
        "*System*\nOrders API (`orders-api`)",
        "*Access*\nwrite",
        "*Duration*\n1h",
        "*Ticket*\nPAY-184",
        "*Request*\n`R-7K3Q9X2M`",
    ]
    assert text_of(reason) == "*Reason*\n> restart the payment worker"
    assert text_of(status) == (
        f"Approvers: {APPROVERS}\nLapses {slack_date(NOW + timedelta(hours=1))} if nobody decides."
    )
    assert actions["block_id"] == "decision"
    assert buttons(actions) == [
        ("Approve", "approve_request", "R-7K3Q9X2M"),
        ("Deny", "deny_request", "R-7K3Q9X2M"),
    ]


def test_card_counts_approvals_when_more_than_one_is_required(policy: Policy) -> None:
    pending = request(approvals=(LEAD1,), approvals_required=2)
    status = parsed(approval_card(policy, pending, None))[-2]
    assert text_of(status) == f":ballot_box_with_check: *1 of 2 approvals* (<@{LEAD1}>)"


def test_user_text_on_the_card_is_shown_as_text_never_as_a_ping(policy: Policy) -> None:
    hostile = request(ticket=HOSTILE, reason=HOSTILE, role_id="<b>")
    _, facts, reason, *_ = parsed(approval_card(policy, hostile, None))
    assert facts["fields"][2]["text"] == "*Access*\n&lt;b&gt;"
    assert facts["fields"][4]["text"] == f"*Ticket*\n{HOSTILE_SHOWN}"
    assert text_of(reason) == f"*Reason*\n> {HOSTILE_SHOWN}"
    assert card_text(hostile) == (
        f"Access request R-7K3Q9X2M from <@{BOB}>: &lt;b&gt; on orders-api for 1h ({HOSTILE_SHOWN})"
    )


def test_a_long_reason_is_cut_on_the_card_and_says_where_the_rest_is(policy: Policy) -> None:
    long = request(reason="x" * 701)
    assert reason_cut(long) and not reason_cut(request(reason="x" * 700))
    reason = parsed(approval_card(policy, long, None))[2]
    assert text_of(reason).endswith("…\n_(cut; the full reason is in the thread)_")


def test_grants_line_says_exactly_what_approving_gives(policy: Policy) -> None:
    asked = request(identity="nina`x", grant_name="orders-admin")
    grants = parsed(approval_card(policy, asked, None))[2]
    assert text_of(grants) == ":key: Grants `orders-admin` to `nina'x` on `orders-api`"


def test_denied_card_has_no_buttons_and_shows_the_escaped_reason(policy: Policy) -> None:
    denied = request(
        state=RequestState.denied, decided_by=LEAD1, decided_at=NOW, decision_note=HOSTILE
    )
    blocks = parsed(approval_card(policy, denied, None))
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert text_of(blocks[-1]) == (
        f":x: *Denied* by <@{LEAD1}> {slack_date(NOW)}\n*Reason:* {HOSTILE_SHOWN}"
    )


@pytest.mark.parametrize(
    ("state", "line"),
    [
        (RequestState.cancelled, ":heavy_multiplication_x: *Cancelled* by the requester {when}"),
        (RequestState.lapsed, ":hourglass: *Lapsed* {when}: nobody decided in time"),
    ],
)
def test_cancelled_and_lapsed_cards_say_so_without_buttons(
    policy: Policy, state: RequestState, line: str
) -> None:
    blocks = parsed(approval_card(policy, request(state=state, decided_at=NOW), None))
    assert blocks[-1]["type"] == "context"
    assert text_of(blocks[-1]) == line.format(when=slack_date(NOW))


def test_approved_card_shows_who_approved_and_the_active_session(policy: Policy) -> None:
    approved = request(
        approvals=(LEAD1,), state=RequestState.approved, decided_by=LEAD1, decided_at=NOW
    )
    active = session(approved)
    status = parsed(approval_card(policy, approved, active))[-1]
    assert text_of(status) == (
        f":white_check_mark: *Approved* by <@{LEAD1}> {slack_date(NOW)}\n"
        f":unlock: *Active* (`S-4F6H8J2K`) until {slack_date(NOW + timedelta(hours=1))}"
    )


def test_a_failed_grant_offers_retry_only_while_the_retry_window_is_open(policy: Policy) -> None:
    approved = request(state=RequestState.approved, decided_by=LEAD1, decided_at=clock.now())
    failed = session(approved, state=SessionState.grant_failed, last_error=HOSTILE)
    *_, status, retry = parsed(approval_card(policy, approved, failed))
    assert text_of(status).endswith(
        f":warning: *Grant failed*: {HOSTILE_SHOWN}. Nothing was granted."
    )
    assert buttons(retry) == [("Retry grant", "retry_grant", "S-4F6H8J2K")]
    clock.travel(timedelta(minutes=16))  # the policy's retry_within is 15m
    assert parsed(approval_card(policy, approved, failed))[-1]["type"] == "context"


def test_breakglass_card_asks_for_a_review_then_shows_who_reviewed(policy: Policy) -> None:
    taken = request(
        system_id="checkout-db",
        state=RequestState.approved,
        route=Route.breakglass,
        decided_at=NOW,
        review_state=ReviewState.due,
        review_due_at=NOW + timedelta(minutes=15),
        escalations=1,
    )
    header, *_, status, review = parsed(approval_card(policy, taken, None))
    assert header["text"]["text"] == "BREAK-GLASS production access"
    assert text_of(status) == (
        f":rotating_light: *BREAK-GLASS*: granted at once to <@{BOB}> {slack_date(NOW)}\n"
        f":eyes: *Needs a retro-review* by {slack_date(NOW + timedelta(minutes=15))}"
        " · escalated 1 time(s)"
    )
    assert review["block_id"] == "review"
    assert buttons(review) == [
        ("Acknowledge", "breakglass_ack", "R-7K3Q9X2M"),
        ("Flag and end access", "breakglass_flag", "R-7K3Q9X2M"),
    ]
    taken.review_state, taken.reviewed_by, taken.reviewed_at = ReviewState.flagged, LEAD2, NOW
    status = parsed(approval_card(policy, taken, None))[-1]
    assert text_of(status).endswith(
        f":triangular_flag_on_post: *Flagged* by <@{LEAD2}> {slack_date(NOW)}; access ended"
    )


def test_extension_card_links_the_session_it_extends(policy: Policy) -> None:
    original = session()
    extension = request(id="R-EXT00001", kind=RequestKind.extension, extends_session_id=original.id)
    header, link, facts, *_ = parsed(approval_card(policy, extension, original))
    assert header["text"]["text"] == "Extension request"
    assert text_of(link) == (
        f":link: Extends session `S-4F6H8J2K` (request `R-7K3Q9X2M`), which now ends "
        f"{slack_date(NOW + timedelta(hours=1))}. The original card's thread tells its story."
    )
    assert facts["fields"][3]["text"] == "*Extra time*\n1h"
    assert card_text(extension).startswith("Extension request R-EXT00001 from")


def test_card_title_names_the_tier(policy: Policy) -> None:
    assert card_title(request(), policy.system("orders-staging")) == "Staging access request"
    assert card_title(request(), None) == "Access request"


@pytest.mark.parametrize(
    ("route", "line"),
    [
        (Route.oncall, ":pager: *Auto-approved: on call* {when} (on call &lt;now&gt;)"),
        (Route.auto, ":robot_face: *Auto-approved* {when} (on call &lt;now&gt;)"),
        (Route.approvers, f":white_check_mark: *Approved* by <@{LEAD1}>, <@{LEAD2}> {{when}}"),
    ],
)
def test_decided_line_says_how_the_request_was_approved(route: Route, line: str) -> None:
    decided = request(
        approvals=(LEAD1, LEAD2),
        state=RequestState.approved,
        route=route,
        decided_at=NOW,
        decision_note="on call <now>",
    )
    assert decided_line(decided) == line.format(when=slack_date(NOW))


@pytest.mark.parametrize(
    ("reason", "ended_by", "text"),
    [
        (EndReason.released, BOB, f"ended early by <@{BOB}>"),
        (EndReason.admin, "root <&>", "ended by admin root &lt;&amp;&gt;"),
        (EndReason.flagged, None, "flagged in review"),
        (EndReason.expired, None, "expired"),
    ],
)
def test_end_reason_text(reason: EndReason, ended_by: str | None, text: str) -> None:
    ended = session(state=SessionState.ended, end_reason=reason, ended_by=ended_by)
    assert end_reason_text(ended) == text
