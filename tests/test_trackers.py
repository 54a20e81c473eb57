"""The four tracker adapters against fakes of their services over real HTTP
(tests/fakes/trackers.py: each checks method, path, auth header and body), and the registry's
start-up checks: what a lookup answers, what a comment sends, and how failures are told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from app.policy import PolicyError, load_policy
from app.trackers.base import TicketNotFound, TrackerError, build_trackers
from app.trackers.github_issues import GitHubIssuesConfig, GitHubIssuesTracker
from app.trackers.incident_io import IncidentIoConfig, IncidentIoTracker
from app.trackers.jira import JiraConfig, JiraTracker
from app.trackers.pagerduty_incidents import PagerDutyIncidentsConfig, PagerDutyIncidentsTracker
from tests.conftest import write_policy
from tests.fakes.trackers import FakeGitHubIssues, FakeIncidentIo, FakeJira, FakePagerDutyIncidents

TOKEN = "tracker-test-token-9f8e7d"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TRACKER_TOKEN", TOKEN)


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(TOKEN, email="bot@example.com") as fake:
        yield fake


def _jira(fake: FakeJira, **config: object) -> JiraTracker:
    return JiraTracker(
        JiraConfig.model_validate(
            {"url": fake.url, "email": fake.email, "token_env": "TEST_TRACKER_TOKEN", **config}
        )
    )


def test_jira_cloud_lookup_reads_summary_status_and_assignee_with_basic_auth(
    jira: FakeJira,
) -> None:
    jira.add_issue("PAY-184", "Payment worker leaks", assignee=("Bob B", "bob@example.com"))
    ticket = _jira(jira).lookup("PAY-184")
    assert (ticket.key, ticket.title, ticket.status, ticket.state) == (
        "PAY-184",
        "Payment worker leaks",
        "In Progress",
        "open",
    )
    assert ticket.url == f"{jira.url}/browse/PAY-184"
    assert ticket.assigned_to("BOB@example.com") and ticket.assignee_names() == "Bob B"
    (call,) = jira.calls
    assert (call.method, call.path) == ("GET", "/rest/api/3/issue/PAY-184")
    assert parse_qs(call.query)["fields"] == ["summary,status,assignee"]


def test_jira_done_category_is_closed_and_an_unknown_key_is_not_found(jira: FakeJira) -> None:
    jira.add_issue("PAY-1", "Old", status="Won't Do", category="done")
    assert _jira(jira).lookup("PAY-1").state == "closed"
    with pytest.raises(TicketNotFound, match="PAY-999 was not found in Jira"):
        _jira(jira).lookup("PAY-999")


def test_jira_cloud_comment_is_atlassian_document_format(jira: FakeJira) -> None:
    jira.add_issue("PAY-184", "Leak")
    _jira(jira).comment("PAY-184", "first line\n\nsecond line")
    assert jira.commented("PAY-184") == ["first line\nsecond line"]
    call = jira.calls[-1]
    assert (call.method, call.path) == ("POST", "/rest/api/3/issue/PAY-184/comment")
    assert call.body["body"]["type"] == "doc"


def test_jira_data_center_uses_a_bearer_token_and_v2_plain_comments() -> None:
    with FakeJira(TOKEN, email=None, api_version=2) as fake:
        fake.add_issue("OPS-7", "Disk full")
        tracker = _jira(fake, auth="bearer", api_version=2, email=None)
        assert tracker.lookup("OPS-7").title == "Disk full"
        tracker.comment("OPS-7", "granted")
        assert fake.commented("OPS-7") == ["granted"]
        assert fake.calls[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_jira_wrong_token_5xx_and_a_hang_are_errors_that_say_why(jira: FakeJira) -> None:
    jira.add_issue("PAY-184", "Leak")
    wrong = JiraTracker(
        JiraConfig(url=jira.url, email="someone@example.com", token_env="TEST_TRACKER_TOKEN")  # type: ignore[arg-type]
    )
    with pytest.raises(TrackerError) as refused:
        wrong.lookup("PAY-184")
    assert not refused.value.retryable and "401" in str(refused.value)
    jira.script.fail(503)
    with pytest.raises(TrackerError) as down:
        _jira(jira).lookup("PAY-184")
    assert down.value.retryable and "Jira answered HTTP 503" in str(down.value)
    jira.script.hang(1.0)
    with pytest.raises(TrackerError, match="timed out") as slow:
        _jira(jira, timeout=0.2).lookup("PAY-184")
    assert slow.value.retryable


def test_github_issue_by_owner_repo_number_or_in_the_configured_repo() -> None:
    with FakeGitHubIssues(TOKEN) as fake:
        fake.add_issue("acme/api#12", "Flaky deploy", assignees=("bobgh",))
        fake.add_issue("acme/api#13", "Done thing", state="closed")
        fake.emails["bobgh"] = "bob@example.com"
        config = {"token_env": "TEST_TRACKER_TOKEN", "api_url": fake.url, "repo": "acme/api"}
        tracker = GitHubIssuesTracker(GitHubIssuesConfig.model_validate(config))
        ticket = tracker.lookup("#12")
        assert (ticket.key, ticket.title, ticket.state) == ("acme/api#12", "Flaky deploy", "open")
        assert ticket.assigned_to("bob@example.com")
        assert ticket.url == "https://github.test/acme/api/issues/12"
        assert tracker.lookup("acme/api#13").state == "closed"
        with pytest.raises(TicketNotFound, match="acme/api#99 was not found on GitHub"):
            tracker.lookup("acme/api#99")
        tracker.comment("12", "ended")
        assert fake.commented("acme/api#12") == ["ended"]
        post = fake.calls[-1]
        assert (post.method, post.path, post.body) == (
            "POST",
            "/repos/acme/api/issues/12/comments",
            {"body": "ended"},
        )
        assert post.headers["authorization"] == f"Bearer {TOKEN}"


def test_pagerduty_incident_by_number_with_assignee_emails_and_notes_by_id() -> None:
    with FakePagerDutyIncidents(TOKEN) as fake:
        fake.add_incident("Q1ABC", 1234, "Checkout down", assignees=(("Bob", "bob@example.com"),))
        config = {"token_env": "TEST_TRACKER_TOKEN", "api_url": fake.url, "from_email": "bot@x.io"}
        tracker = PagerDutyIncidentsTracker(PagerDutyIncidentsConfig.model_validate(config))
        ticket = tracker.lookup("PD-1234")
        assert (ticket.title, ticket.state, ticket.is_incident, ticket.id) == (
            "Checkout down",
            "open",
            True,
            "Q1ABC",
        )
        assert ticket.assigned_to("bob@example.com")
        assert fake.calls[0].path == "/incidents/1234"
        tracker.comment("PD-1234", "granted")
        assert fake.commented("Q1ABC") == ["granted"]
        note = fake.calls[-1]
        assert (note.path, note.headers["from"]) == ("/incidents/Q1ABC/notes", "bot@x.io")
        fake.incidents["Q1ABC"]["status"] = "resolved"
        assert tracker.lookup("PD-1234").state == "resolved"
        with pytest.raises(TicketNotFound):
            tracker.lookup("PD-9")


def test_incident_io_by_reference_maps_status_categories_and_takes_no_comment() -> None:
    with FakeIncidentIo(TOKEN) as fake:
        fake.add_incident("01HZX", 42, "Payments degraded", lead=("Bob", "bob@example.com"))
        config = {"token_env": "TEST_TRACKER_TOKEN", "api_url": fake.url}
        tracker = IncidentIoTracker(IncidentIoConfig.model_validate(config))
        ticket = tracker.lookup("INC-42")
        assert (ticket.key, ticket.state, ticket.status) == ("INC-42", "open", "Live")
        assert ticket.assigned_to("bob@example.com") and fake.calls[0].path == "/v2/incidents/42"
        for category, state in (("learning", "resolved"), ("declined", "closed")):
            fake.incidents["01HZX"]["category"] = category
            assert tracker.lookup("INC-42").state == state
        with pytest.raises(TrackerError) as refused:
            tracker.comment("INC-42", "x")
        assert not refused.value.retryable


def _policy(tmp_path: Path, trackers: str) -> Path:
    path = write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook")
    text = path.read_text().replace("systems:\n", f"  trackers:\n{trackers}systems:\n", 1)
    path.write_text(text)
    return path


def test_an_unknown_tracker_or_a_bad_config_fails_at_start_with_file_and_line(
    tmp_path: Path,
) -> None:
    path = _policy(tmp_path, "    - {type: trello, pattern: '^T-'}\n")
    with pytest.raises(PolicyError) as unknown:
        build_trackers(load_policy(path))
    assert f"{path}:9: defaults.trackers[0].type: unknown tracker 'trello'" in str(unknown.value)
    path = _policy(tmp_path, "    - {type: jira, pattern: '^T-', config: {token_env: X}}\n")
    with pytest.raises(PolicyError, match=r"policy.yml:9: defaults.trackers\[0\].config.url"):
        build_trackers(load_policy(path))


def test_comment_true_on_a_tracker_without_comments_fails_at_start(tmp_path: Path) -> None:
    rule = "    - {type: incident_io, pattern: '^INC-', comment: true, config: {token_env: TEST_TRACKER_TOKEN}}\n"  # noqa: E501
    with pytest.raises(PolicyError, match="incident_io takes no comments"):
        build_trackers(load_policy(_policy(tmp_path, rule)))


def test_a_systems_own_rules_come_before_the_defaults(tmp_path: Path) -> None:
    path = _policy(
        tmp_path,
        "    - {type: incident_io, pattern: '^[A-Z]+-', config: {token_env: TEST_TRACKER_TOKEN}}\n",
    )
    text = path.read_text().replace(
        "    roles:\n",
        "    trackers:\n      - {type: jira, pattern: '^PAY-', config: {url: 'https://j.test', "
        "email: b@example.com, token_env: TEST_TRACKER_TOKEN}}\n    roles:\n",
        1,
    )
    path.write_text(text)
    trackers = build_trackers(load_policy(path))
    assert trackers.for_ticket("orders-api", "PAY-1").rule.type == "jira"  # type: ignore[union-attr]
    assert trackers.for_ticket("orders-api", "INC-1").rule.type == "incident_io"  # type: ignore[union-attr]
    assert trackers.for_ticket("orders-api", "lowercase") is None
