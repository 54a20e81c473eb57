"""Texts render as written in Slack: the mrkdwn checker itself (so it cannot pass silently),
the help reply's placeholders, refusals that keep their mentions and nothing else, and every
card state, DM, modal and Home view rendered straight from the view functions, including the
states a test can't reach cheaply through the bot (tests/test_mrkdwn_flows.py drives the bot)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.models import (
    AccessRequest,
    AccessSession,
    Approval,
    CloseoutState,
    EndReason,
    RequestKind,
    RequestState,
    ReviewState,
    Route,
    SessionState,
)
from app.policy import Policy, load_policy
from app.slack.blocks.answers import help_text, list_text, problem_text
from app.slack.blocks.card import approval_card, card_text
from app.slack.blocks.dm import closeout_prompt, granted_message
from app.slack.blocks.home import Home, home_view
from app.slack.blocks.modals import closeout_modal, deny_modal, extend_modal, request_modal
from app.slack.blocks.mrkdwn import what
from app.slack.blocks.thread import closeout_note
from app.slack.text import with_mentions
from tests.conftest import BOB, LEAD1, BotHarness
from tests.mrkdwn import mrkdwn_in, problems, report, texts_of_answer, write_hostile_policy

HOSTILE = "<!channel> <http://evil|x> & <@U0BOB>"


# --- the checker ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "plain words, nothing special",
        "<@U0BOB> and <@W0LEAD> approved in <#C0APPROVALS> and <#C0APPROVALS|approvals>",
        "<!subteam^S0SRE> at <!date^1700000000^{date_short_pretty} at {time}|2023-11-14 22:13>",
        "see <https://example.com/runbook|the runbook> or <mailto:sre@example.com>",
        "`/prod-access &lt;system&gt;` &amp; more",
        "*Reason*\n> quoted &lt;b&gt;\n> second line",
    ],
)
def test_checker_accepts_escaped_text_and_the_sequences_the_bot_builds(text: str) -> None:
    assert problems(text) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/prod-access <system> <role>", "raw '<'"),
        ("hey <!channel> look", "raw '<'"),
        ("<!here>", "raw '<'"),
        ("click <http://evil|x", "raw '<'"),
        ("Orders <API>", "stray '>'"),
        ("a > b", "stray '>'"),
        ("R&D", "raw '&'"),
        ("&amp;lt;system&amp;gt;", "escaped twice"),
        ("<@bob>", "raw '<'"),
    ],
)
def test_checker_reports_what_slack_would_not_show_as_written(text: str, problem: str) -> None:
    assert any(problem in found for found in problems(text)), problems(text)


def test_checker_finds_mrkdwn_in_blocks_and_views_but_not_plain_text() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "a <b> & c"},
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "<not> mrkdwn"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "<one>"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "two &"}]},
        ],
    }
    assert list(mrkdwn_in(view)) == ["<one>", "two &"]
    assert texts_of_answer("plain <answer>") == ["plain <answer>"]
    assert texts_of_answer('{"response_action": "errors", "errors": {"x": "<y>"}}') == []
    assert len(report([("here", "<one>"), ("there", "fine")])) == 1


# --- refusals and help --------------------------------------------------------------------


def test_a_refusal_keeps_the_mentions_it_lists_and_escapes_everything_else() -> None:
    text = "Only the approvers of Orders <API> & co can approve this: <@U0LEAD1>, @sre-leads."
    assert with_mentions(text, ["<@U0LEAD1>", "@sre-leads"]) == (
        "Only the approvers of Orders &lt;API&gt; &amp; co can approve this: <@U0LEAD1>, "
        "@sre-leads."
    )
    typed = "Unknown system '<@U0LEAD1>' or <!channel>"
    assert with_mentions(typed) == "Unknown system '&lt;@U0LEAD1&gt;' or &lt;!channel&gt;"
    assert with_mentions(typed, ["<!channel>"]) == with_mentions(typed)  # not a mention
    assert with_mentions("<!subteam^S0SRE> & co", ["<!subteam^S0SRE>"]) == (
        "<!subteam^S0SRE> &amp; co"
    )


def test_help_shows_the_usage_placeholders_as_text(sqlite_bot: BotHarness) -> None:
    answer = sqlite_bot.send.command("help", BOB).text
    assert (
        "`/prod-access &lt;system&gt; &lt;role&gt; &lt;duration&gt; &lt;ticket&gt; "
        "&lt;reason…&gt;`" in answer
    )
    assert "`/prod-access cancel &lt;request-id&gt;`" in answer
    assert "<system>" not in answer and "&amp;lt;" not in answer
    assert problems(answer) == []


# --- every view, rendered directly -----------------------------------------------------------


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write_hostile_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook"))


def _request(**fields: object) -> AccessRequest:
    now = clock.now()
    values: dict = dict(
        id="R-1",
        requester_id=BOB,
        system_id="orders-api",
        role_id="write",
        duration_seconds=3600,
        ticket=HOSTILE,
        reason=HOSTILE + "\n" + "long " * 200,
        state=RequestState.pending,
        created_at=now,
        kind=RequestKind.access,
        route=Route.approvers,
        approvals_required=2,
        decide_by=now + timedelta(hours=1),
        escalations=0,
        identity="bob<&>@example.com",
        grant_name="orders-admin",
    )
    values.update(fields)
    approvers = values.pop("approvals", [LEAD1])
    request = AccessRequest(**values)
    request.approvals = [Approval(approver_id=a, at=now) for a in approvers]  # type: ignore[union-attr]
    return request


def _session(request: AccessRequest, **fields: object) -> AccessSession:
    now = clock.now()
    values: dict = dict(
        id="S-1",
        request=request,
        request_id=request.id,
        requester_id=request.requester_id,
        system_id=request.system_id,
        role_id=request.role_id,
        grant_name="orders-admin",
        identity="bob<&>@example.com",
        state=SessionState.active,
        created_at=now,
        granted_at=now,
        expires_at=now + timedelta(hours=1),
        attempts=3,
        last_error=f"provider said {HOSTILE}",
        closeout_state=CloseoutState.not_due,
        reminders_sent=1,
        closeout_changes=HOSTILE,
        closeout_followups="<b>&</b>",
    )
    values.update(fields)
    return AccessSession(**values)


DECIDED = {"decided_by": LEAD1, "decided_at": clock.now()}
REQUESTS = {
    "pending": {},
    "pending, one of two approvals": {"approvals": [LEAD1]},
    "denied": {"state": RequestState.denied, "decision_note": HOSTILE, **DECIDED},
    "cancelled": {"state": RequestState.cancelled, **DECIDED},
    "lapsed": {"state": RequestState.lapsed, "decision_note": HOSTILE, **DECIDED},
    "approved": {"state": RequestState.approved, **DECIDED},
    "auto-approved": {
        "state": RequestState.approved,
        "route": Route.auto,
        "decision_note": HOSTILE,
    },
    "on call": {"state": RequestState.approved, "route": Route.oncall, "decision_note": HOSTILE},
    "staging": {
        "state": RequestState.approved,
        "route": Route.staging,
        "system_id": "orders-staging",
    },
    "break-glass, review due": {
        "state": RequestState.approved,
        "route": Route.breakglass,
        "review_state": ReviewState.due,
        "review_due_at": clock.now(),
        "escalations": 2,
    },
    "break-glass, flagged": {
        "state": RequestState.approved,
        "route": Route.breakglass,
        "review_state": ReviewState.flagged,
        "reviewed_by": LEAD1,
        "reviewed_at": clock.now(),
    },
    "break-glass, acknowledged": {
        "state": RequestState.approved,
        "route": Route.breakglass,
        "review_state": ReviewState.acknowledged,
        "reviewed_by": LEAD1,
    },
    "extension": {"kind": RequestKind.extension, "extends_session_id": "S-1"},
    "system gone from the policy": {"system_id": "gone<&>"},
}
SESSIONS = {
    "no session": None,
    **{state.value: {"state": state} for state in SessionState},
    **{
        f"ended: {reason.value}": {
            "state": SessionState.ended,
            "end_reason": reason,
            "ended_by": "admin <root>&co" if reason == EndReason.admin else BOB,
            "ended_at": clock.now(),
        }
        for reason in EndReason
    },
    "ended, closeout pending": {"state": SessionState.ended, "closeout_state": "prompted"},
    "ended, closed out": {"state": SessionState.ended, "closeout_state": "closed_out"},
}


def test_every_card_state_renders_as_written(policy: Policy) -> None:
    texts = []
    for name, fields in REQUESTS.items():
        for session_name, session_fields in SESSIONS.items():
            request = _request(**fields)
            session = None if session_fields is None else _session(request, **session_fields)
            card = approval_card(policy, request, session, "<@U0LEAD1>, <!subteam^S0SRE>")
            where = f"card {name} / {session_name}"
            texts += [(where, text) for text in mrkdwn_in(card)]
            texts.append((where + " text", card_text(request)))
    assert len(texts) > 500
    assert report(texts) == []


def test_every_message_modal_and_home_view_renders_as_written(policy: Policy) -> None:
    now = clock.now()
    request = _request()
    sessions = [_session(request, **(f or {})) for f in SESSIONS.values()]
    history = [_request(**f) for f in REQUESTS.values()]
    home = Home(
        sessions=sessions,
        requests=[request],
        to_decide=[request],
        to_review=[request],
        history=history,
        systems=list(policy.systems),
    )
    rendered = {
        "home": home_view(policy, home, now),
        "home, nothing": home_view(policy, Home(), now),
        "granted": granted_message(policy, sessions[1]),
        "closeout prompt": closeout_prompt(policy, sessions[-1]),
        "closeout reminder": closeout_prompt(policy, sessions[-1], reminder=2),
        "closeout modal": closeout_modal(sessions[-1]),
        "deny modal": deny_modal(request),
        "extend modal": extend_modal(policy, sessions[1], timedelta(hours=1)),
        "extend modal, no room": extend_modal(policy, sessions[1], timedelta(0)),
        "request modal": request_modal(policy),
        "request modal, role": request_modal(policy, "orders-api", "read", breakglass=True),
        "request modal, nothing": request_modal(policy, systems=[]),
    }
    texts = [(name, text) for name, payload in rendered.items() for text in mrkdwn_in(payload)]
    texts += [
        ("help", help_text(policy)),
        ("help, no systems", help_text(policy, [])),
        ("problem", problem_text({"system": f"Unknown system '{HOSTILE}'."})),
        ("list", list_text(history, sessions)),
        ("list, nothing", list_text([], [])),
        ("closeout thread", closeout_note(sessions[-1])),
    ]
    assert report(texts) == []
    assert "staging access to *Orders staging &lt;beta&gt; &amp; co*" in what(
        _request(system_id="orders-staging"), policy
    )
