"""The slash command's answers, built straight from rows in memory: help, what happens to a
request, what is wrong with one, the list; every `<` a person or the policy wrote stays text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.models import RequestState, Route, SessionState
from app.policy import Policy
from app.slack.blocks import answers
from app.slack.text import slack_date
from tests.blocks_rows import HOSTILE, HOSTILE_SHOWN, NOW, blocks_policy, request, session
from tests.fakes.policy import LEAD1


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return blocks_policy(Path(tmp_path_factory.mktemp("answers")))


def test_help_lists_the_systems_with_each_roles_longest_time(policy: Policy) -> None:
    lines = answers.help_text(policy).split("\n")
    assert lines[0] == "*Usage*"
    assert "• `/prod-access &lt;system&gt; &lt;role&gt; &lt;duration&gt;" in lines[2]
    assert lines[-4:] == [
        "*Systems you can request*",
        "• `orders-api` Orders API: `read` (max 30m), `write` (max 2h)",
        "• `orders-staging` Orders staging _(staging: approved at once)_: `write` (max 2h)",
        "• `checkout-db` Checkout DB: `write` (max 4h)",
    ]


def test_help_for_someone_who_may_request_nothing_says_so(policy: Policy) -> None:
    assert answers.help_text(policy, []).endswith(
        "*Systems you can request*\nNone: you are not on the requesters list of any system."
    )


@pytest.mark.parametrize(
    ("rule", "answer"),
    [
        (None, "Request `R-7K3Q9X2M` is on its way to the approvers."),
        (
            (Route.oncall, "on call <P1>"),
            "Request `R-7K3Q9X2M`: granted at once if you are on call now (on call &lt;P1&gt;), "
            "otherwise it is on its way to the approvers.",
        ),
        (
            (Route.auto, "read-only <auto>"),
            "Request `R-7K3Q9X2M` is approved by the policy (read-only &lt;auto&gt;): "
            "granting now.",
        ),
    ],
)
def test_accepted_text_says_what_happens_next(rule: tuple[Route, str] | None, answer: str) -> None:
    assert answers.accepted_text(request(), rule) == answer


def test_problem_keeps_the_mentions_it_names_and_escapes_the_rest() -> None:
    errors = {"system": f"Unknown system '{HOSTILE}'.", "role": f"Ask <@{LEAD1}>."}
    lines = answers.problem_text(errors, [f"<@{LEAD1}>"]).split("\n")
    assert lines[:3] == [
        "*That request can't be sent:*",
        f"• Unknown system '{HOSTILE_SHOWN}'.",
        f"• Ask <@{LEAD1}>.",
    ]
    assert lines[4] == "*Usage*"


def test_list_shows_open_access_then_waiting_requests() -> None:
    active = session()
    waiting = request(id="R-WAITING1", ticket=HOSTILE, duration_seconds=1800)
    assert answers.list_text([waiting], [active]).split("\n") == [
        "*Your access*",
        f"• `S-4F6H8J2K` write on orders-api, active until {slack_date(active.expires_at)}",
        "*Waiting for approval*",
        f"• `R-WAITING1` write on orders-api for 30m, ticket {HOSTILE_SHOWN}, asked "
        f"{slack_date(NOW)}",
    ]
    assert answers.list_text([], []) == "You have no pending requests and no open access."


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (timedelta(hours=1, minutes=5), "1h 5m left"),
        (timedelta(hours=2), "2h left"),
        (timedelta(minutes=4, seconds=1), "5m left"),
        (timedelta(0), "ending now"),
        (timedelta(minutes=-3), "ending now"),
    ],
)
def test_time_left_rounds_up_to_the_minute(left: timedelta, text: str) -> None:
    assert answers.time_left(NOW + left, NOW) == text


def test_session_line_by_state() -> None:
    assert answers.session_line(session(), NOW) == (
        f"`S-4F6H8J2K` write on orders-api, active until "
        f"{slack_date(NOW + timedelta(hours=1))} (1h left)"
    )
    failing = session(state=SessionState.revoke_failing)
    assert answers.session_line(failing) == (
        "`S-4F6H8J2K` write on orders-api, ending — revoke failing, retrying"
    )
    failed = session(request(state=RequestState.approved), state=SessionState.grant_failed)
    assert answers.session_line(failed) == "`S-4F6H8J2K` write on orders-api, grant failed"
