"""The App Home tab, built straight from rows in memory and validated by slack_sdk's View:
each section appears only when it has something, with the buttons its rows offer."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.models import RequestKind, RequestState, ReviewState, Route, SessionState
from app.policy import Policy
from app.slack.blocks.home import Home, history_outcome, home_view, request_line
from app.slack.text import slack_date
from tests.blocks_rows import (
    HOSTILE,
    HOSTILE_SHOWN,
    NOW,
    blocks_policy,
    buttons,
    parsed_view,
    request,
    session,
    text_of,
)
from tests.fakes.policy import ALICE


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return blocks_policy(Path(tmp_path_factory.mktemp("home")))


def _headers(view: dict) -> list[str]:
    return [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]


def test_empty_home_says_no_open_access_and_shows_the_help(policy: Policy) -> None:
    view = parsed_view(home_view(policy, Home(), NOW))
    assert view["type"] == "home"
    assert _headers(view) == ["Your production access"]
    assert text_of(view["blocks"][1]) == "You have no open access."
    assert text_of(view["blocks"][-1]).endswith(
        "*Systems you can request*\nNone: you are not on the requesters list of any system."
    )


def test_home_offers_each_row_its_buttons(policy: Policy) -> None:
    mine = request(id="R-MINE0001", ticket=HOSTILE)
    theirs = request(id="R-THEIRS01", requester_id=ALICE)
    taken = request(
        id="R-TAKEN001",
        requester_id=ALICE,
        state=RequestState.approved,
        route=Route.breakglass,
        review_state=ReviewState.due,
    )
    home = Home(
        sessions=[session(), session(id="S-ENDING01", state=SessionState.revoking)],
        requests=[mine],
        to_decide=[theirs],
        to_review=[taken],
        history=[taken],
        systems=list(policy.systems),
    )
    view = parsed_view(home_view(policy, home, NOW))
    assert _headers(view) == [
        "Your production access",
        "Your pending requests",
        "Waiting for your approval",
        "Break-glass to review",
        "Recent history",
    ]
    blocks = view["blocks"]
    assert text_of(blocks[1]).endswith("(1h left)")
    assert buttons(blocks[2]) == [
        ("End access now", "end_session", "S-4F6H8J2K"),
        ("Extend", "extend_session", "S-4F6H8J2K"),
    ]
    assert text_of(blocks[3]) == "`S-ENDING01` write on orders-api, revoking"  # no buttons
    pending = next(b for b in blocks if b.get("accessory"))
    assert HOSTILE_SHOWN in text_of(pending)
    assert (pending["accessory"]["action_id"], pending["accessory"]["value"]) == (
        "cancel_request",
        "R-MINE0001",
    )
    decide = next(b for b in blocks if b.get("block_id") == "decide:R-THEIRS01")
    assert [b[1] for b in buttons(decide)] == ["approve_request", "deny_request"]
    review = next(b for b in blocks if b.get("block_id") == "review:R-TAKEN001")
    assert [b[1] for b in buttons(review)] == ["breakglass_ack", "breakglass_flag"]
    *_, history, divider, _help = blocks
    assert divider["type"] == "divider"
    assert text_of(history) == f"• {request_line(taken)}: break-glass"


def test_request_line_and_history_outcome() -> None:
    extension = request(kind=RequestKind.extension, duration_seconds=1800, ticket="<x>")
    assert request_line(extension) == (
        f"`R-7K3Q9X2M` write on orders-api, extension +30m, ticket &lt;x&gt;, asked "
        f"{slack_date(NOW)}"
    )
    assert history_outcome(request(state=RequestState.approved)) == "approved"
    assert history_outcome(request(state=RequestState.denied)) == "denied"
