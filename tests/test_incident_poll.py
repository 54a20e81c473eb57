"""Incident-bound access through the real bot: a session whose incident is resolved in
PagerDuty, incident.io or (when its rule says so) Jira is ended by one run of the poll, with
the audit event `incident_resolved_ended` and the closeout prompt saying why; a rule with
`end_access_on_resolve: false`, an issue tracker left as it comes, an open incident and a
tracker that cannot answer end nothing. Trackers are fakes over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app import metrics
from app.jobs.incidents import end_sessions_of_resolved_incidents
from app.models import CloseoutState, EndReason, SessionState
from tests.conftest import ALICE, BOB, eventually
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.incident_bot import IncidentBot, ended_dm, incident_bot


@pytest.fixture(params=["sqlite", "postgres"])
def ib_both(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[IncidentBot]:
    database_url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    yield from incident_bot(tmp_path, slack, webhook, monkeypatch, database_url)


@pytest.fixture
def ib(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IncidentBot]:
    yield from incident_bot(tmp_path, slack, webhook, monkeypatch)


def _granted(ib: IncidentBot, ticket: str, duration: str = "2h"):
    return ib.bot.granted(f"orders-api write {duration} {ticket} mitigate the incident")


def test_a_resolved_pagerduty_incident_ends_its_session_within_one_poll(
    ib_both: IncidentBot, webhook: WebhookReceiver
) -> None:
    ib = ib_both
    ib.pagerduty.add_incident("Q1PD", 1234, "Checkout 500s", assignees=(("Bob", "bob@x.io"),))
    session = _granted(ib, "PD-1234")
    assert end_sessions_of_resolved_incidents(ib.bot.ctx).ended == []  # still open

    ib.pagerduty.incidents["Q1PD"]["status"] = "resolved"
    run = end_sessions_of_resolved_incidents(ib.bot.ctx)

    assert run.ended == [session.id]
    assert webhook.wait_for(1, action="revoke")[0].body["ticket"] == "PD-1234"
    ended = ib.bot.wait_session(session.request_id, SessionState.ended)
    assert ended.end_reason == EndReason.incident_resolved
    assert ended.closeout_state == CloseoutState.prompted
    [event] = ib.events("incident_resolved_ended")
    assert event.session_id == session.id and event.actor == "prod-access"
    assert event.detail["note"] == "PD-1234 is resolved in PagerDuty"
    prompt = ended_dm(ib, BOB, session.id)
    assert "has ended (the incident PD-1234 was resolved)" in prompt
    # a second replica (or the next poll) finds nothing more to do
    assert end_sessions_of_resolved_incidents(ib.bot.ctx).ended == []
    assert len(ib.events("incident_resolved_ended")) == 1
    assert len(webhook.wait_for(1, action="revoke")) == 1


def test_a_closed_incident_io_incident_and_a_done_jira_issue_end_their_sessions(
    ib: IncidentBot,
) -> None:
    ib.incident_io.add_incident("01HZINC42", 42, "Payments degraded", category="live")
    ib.jira.add_issue("PAY-184", "Worker leaks")
    on_incident = _granted(ib, "INC-42")
    on_issue = _granted(ib, "PAY-184")

    ib.incident_io.incidents["01HZINC42"]["category"] = "closed"
    ib.jira.issues["PAY-184"].update(status="Done", category="done")
    run = end_sessions_of_resolved_incidents(ib.bot.ctx)

    assert sorted(run.ended) == sorted([on_incident.id, on_issue.id])
    assert "the incident INC-42 was resolved" in ended_dm(ib, BOB, on_incident.id)
    assert "the incident PAY-184 was resolved" in ended_dm(ib, BOB, on_issue.id)


def test_each_ticket_is_looked_up_once_per_poll_however_many_sessions_it_backs(
    ib: IncidentBot,
) -> None:
    ib.pagerduty.add_incident("Q1PD", 77, "Disk full")
    first = _granted(ib, "PD-77")
    second = ib.bot.granted("orders-api read 30m PD-77 look at the logs", user=ALICE)
    eventually(lambda: len(ib.pagerduty.commented("Q1PD")) == 2, what="the grants' notes")
    ib.pagerduty.incidents["Q1PD"]["status"] = "resolved"
    before = len(ib.pagerduty.calls)

    run = end_sessions_of_resolved_incidents(ib.bot.ctx)

    assert run.looked_up == ["PD-77"]
    eventually(lambda: len(ib.pagerduty.commented("Q1PD")) == 4, what="the ends' notes")
    calls = ib.pagerduty.calls[before:]
    # each note looks its incident up first (PagerDuty adds notes by id): the rest is the poll
    notes = [c for c in calls if c.method == "POST"]
    assert len([c for c in calls if c.method == "GET"]) - len(notes) == 1
    assert sorted(run.ended) == sorted([first.id, second.id])


def test_rules_that_do_not_end_access_on_resolve_keep_the_session(ib: IncidentBot) -> None:
    ib.pagerduty.add_incident("Q2PD", 88, "Queue backlog")
    ib.jira.add_issue("DOC-7", "Runbook update")
    kept_by_rule = _granted(ib, "PDX-88")
    issue_tracker = _granted(ib, "DOC-7")
    ib.pagerduty.incidents["Q2PD"]["status"] = "resolved"
    ib.jira.issues["DOC-7"].update(status="Done", category="done")
    eventually(lambda: ib.jira.commented("DOC-7") and ib.pagerduty.commented("Q2PD"))
    before = len(ib.pagerduty.calls) + len(ib.jira.calls)

    run = end_sessions_of_resolved_incidents(ib.bot.ctx)

    assert run.looked_up == [] and run.ended == []
    assert len(ib.pagerduty.calls) + len(ib.jira.calls) == before  # not even asked
    for session in (kept_by_rule, issue_tracker):
        assert ib.bot.session_for(session.request_id).state == SessionState.active
    assert ib.events("incident_resolved_ended") == []


def test_a_tracker_that_cannot_answer_changes_nothing_and_is_asked_again_next_poll(
    ib: IncidentBot,
) -> None:
    ib.pagerduty.add_incident("Q3PD", 99, "Latency")
    ib.pagerduty.add_incident("Q4PD", 100, "Errors")
    first, second = _granted(ib, "PD-99"), _granted(ib, "PD-100")
    ib.pagerduty.incidents["Q3PD"]["status"] = "resolved"
    ib.pagerduty.incidents["Q4PD"]["status"] = "resolved"
    failures = metrics.TRACKER_FAILURES.labels(tracker="pagerduty_incidents", call="lookup")
    counted = failures._value.get()
    ib.pagerduty.script.fail(503, times=20)  # whatever the REST helper's retries

    run = end_sessions_of_resolved_incidents(ib.bot.ctx)

    assert run.ended == [] and sorted(run.failed) == ["PD-100", "PD-99"]
    assert len(run.looked_up) == 1  # the other waits: the tracker is down this poll
    assert failures._value.get() == counted + 1
    assert ib.bot.session_for(first.request_id).state == SessionState.active
    assert ib.bot.session_for(second.request_id).state == SessionState.active

    ib.pagerduty.script.clear()
    assert sorted(end_sessions_of_resolved_incidents(ib.bot.ctx).ended) == sorted(
        [first.id, second.id]
    )
