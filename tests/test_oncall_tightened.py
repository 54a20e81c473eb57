"""On-call auto-approval, tightened (issue 15 item 4): a role's `auto_approve_oncall` may name
several schedules, a highest escalation level and require the request's ticket to be an
incident assigned to the requester. Each condition that fails sends the request to the
approvers (the card asks them; nothing is granted) with the reason in the audit trail; all of
them holding grants at once. PagerDuty's on-call API and the trackers are fakes over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from app.models import AuditEvent, RequestState, SessionState
from tests.conftest import ALICE, BOB, eventually
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.incident_bot import IncidentBot, incident_bot

ONCALL_TOKEN = "pd-oncall-token-1a2b3c4d5e"
FIX_ROLE = (
    "      - {id: fix, grant: orders-fixer, auto_approve_oncall: {schedules: [PSCHED1, PSCHED2],"
    " escalation_level_max: 1, incident_assigned: true}}\n"
)


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(ONCALL_TOKEN) as fake:
        yield fake


@pytest.fixture
def ib(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    pagerduty: FakePagerDuty,
) -> Iterator[IncidentBot]:
    settings = {
        "pagerduty_token": SecretStr(ONCALL_TOKEN),
        "pagerduty_api_url": pagerduty.url,
    }
    yield from incident_bot(
        tmp_path, slack, webhook, monkeypatch, extra_settings=settings, extra_roles=FIX_ROLE
    )


def _ask(ib: IncidentBot, ticket: str, user: str = BOB) -> str:
    answer = ib.bot.send.command(f"orders-api fix 1h {ticket} stop the bleeding", user)
    assert "granted at once if you are on call now" in answer.text, answer.text
    return eventually(lambda: _posted(ib), what="the card")


def _posted(ib: IncidentBot) -> str | None:
    request_id = ib.bot.latest_request_id()
    return request_id if ib.bot.request(request_id).card_ts else None


def _audited(ib: IncidentBot, request_id: str, event: str) -> list[dict]:
    with ib.bot.ctx.db() as db:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.request_id == request_id, AuditEvent.event == event)
        )
        return [row.detail for row in rows]


def _left_to_approvers(ib: IncidentBot, request_id: str) -> None:
    """What the approvers and the requester see: the card asks for approval; no access."""
    assert ib.bot.request(request_id).state == RequestState.pending
    assert ib.bot.session_for(request_id) is None
    card = ib.bot.slack.wait_for("chat.postMessage", lambda a: request_id in str(a.get("blocks")))[
        -1
    ]
    assert "approve_request" in str(card["blocks"])


def test_on_call_at_level_one_and_assigned_to_the_incident_is_approved_at_once(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("PSCHED2", ["bob@example.com"], level=1)
    ib.pagerduty.add_incident(
        "Q1PD", 1234, "Checkout 500s", assignees=(("Bob", "Bob@Example.com"),)
    )

    request_id = _ask(ib, "PD-1234")

    session = ib.bot.wait_session(request_id, SessionState.active)
    assert session.requester_id == BOB
    assert ib.bot.request(request_id).decision_note == (
        "on call (PSCHED1, PSCHED2; escalation level ≤ 1; assigned to the incident)"
    )
    assert _audited(ib, request_id, "oncall_not_approved") == []


def test_on_call_above_the_allowed_escalation_level_goes_to_the_approvers(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("PSCHED1", ["bob@example.com"], level=2)
    ib.pagerduty.add_incident(
        "Q1PD", 1234, "Checkout 500s", assignees=(("Bob", "bob@example.com"),)
    )

    request_id = _ask(ib, "PD-1234")

    _left_to_approvers(ib, request_id)
    [detail] = _audited(ib, request_id, "oncall_not_approved")
    assert detail["reason"] == "on call at escalation level 2, above the 1 allowed"


def test_on_call_only_in_a_schedule_the_role_does_not_name_goes_to_the_approvers(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("POTHER", ["bob@example.com"], level=1)
    ib.pagerduty.add_incident(
        "Q1PD", 1234, "Checkout 500s", assignees=(("Bob", "bob@example.com"),)
    )

    request_id = _ask(ib, "PD-1234")

    _left_to_approvers(ib, request_id)
    asked = {c.query for c in pagerduty.calls if c.path == "/oncalls"}
    assert all("POTHER" not in query for query in asked)


def test_a_requester_not_assigned_to_the_incident_goes_to_the_approvers(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("PSCHED1", ["bob@example.com", "alice@example.com"], level=1)
    ib.pagerduty.add_incident(
        "Q1PD", 1234, "Checkout 500s", assignees=(("Alice", "alice@example.com"),)
    )

    request_id = _ask(ib, "PD-1234")

    _left_to_approvers(ib, request_id)
    [detail] = _audited(ib, request_id, "oncall_not_approved")
    assert detail["reason"] == "PD-1234 is assigned to Alice, not to the requester"
    # the same incident, asked for by its assignee, is approved
    mine = _ask(ib, "PD-1234", user=ALICE)
    ib.bot.wait_session(mine, SessionState.active)


def test_a_ticket_that_is_not_an_incident_goes_to_the_approvers(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("PSCHED1", ["bob@example.com"], level=1)
    ib.jira.add_issue("PAY-184", "Worker leaks", assignee=("Bob", "bob@example.com"))

    request_id = _ask(ib, "PAY-184")

    _left_to_approvers(ib, request_id)
    [detail] = _audited(ib, request_id, "oncall_not_approved")
    assert detail["reason"] == "PAY-184 is not an incident"


def test_a_ticket_the_tracker_could_not_verify_goes_to_the_approvers_audited(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("PSCHED1", ["bob@example.com"], level=1)
    ib.incident_io.add_incident("01HZINC42", 42, "Payments down", lead=("Bob", "bob@example.com"))
    ib.incident_io.script.fail(401, times=1)  # the lookup before the card: not verified

    request_id = _ask(ib, "INC-42")

    _left_to_approvers(ib, request_id)
    [failed] = _audited(ib, request_id, "oncall_check_failed")
    assert failed["error"].startswith("ticket INC-42 was not verified")


def test_pagerduty_unreachable_goes_to_the_approvers_audited(
    ib: IncidentBot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.set_on_call("PSCHED1", ["bob@example.com"], level=1)
    ib.pagerduty.add_incident(
        "Q1PD", 1234, "Checkout 500s", assignees=(("Bob", "bob@example.com"),)
    )
    pagerduty.script.fail(503, times=20)

    request_id = _ask(ib, "PD-1234")

    _left_to_approvers(ib, request_id)
    [failed] = _audited(ib, request_id, "oncall_check_failed")
    assert "PagerDuty" in failed["error"] and "503" in failed["error"]
