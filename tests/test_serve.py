"""The real `prod-access serve` process (gunicorn, as the Procfile runs it): health, signed
requests, expiry within 2 seconds, revoke at start of what expired while it was down, and
start-up refusing bad settings and policy files with one clear line each, all at once, then a
pointer to `prod-access check`; a bot token Slack refuses, or a Slack it cannot reach, stops it
with one line naming the setting; a failed start leaves no database behind."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.serve import CHECK_HINT
from tests.conftest import (
    BOB,
    LEAD1,
    eventually,
    run_cli_here,
)
from tests.fakes.serve import ServeProcess, free_port, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture
def env(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> dict[str, str]:
    return serve_env(tmp_path, slack, webhook)


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[ServeProcess]:
    srv = ServeProcess(tmp_path, env)
    srv.start()
    yield srv
    srv.stop()


def _db(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"), timeout=30)


def _granted_session(server: ServeProcess, slack: FakeSlack, env: dict[str, str]) -> str:
    answer = server.sender.command("orders-api write 1h PAY-184 restart payment worker", BOB)
    assert answer.status == 200 and "on its way" in answer.text
    request_id = answer.text.split("`")[1]
    eventually(lambda: _one(env, "SELECT card_ts FROM access_requests WHERE id=?", request_id))
    assert server.sender.click("approve_request", request_id, LEAD1).status == 200
    eventually(
        lambda: (
            _one(env, "SELECT state FROM access_sessions WHERE request_id=?", request_id)
            == "active"
        ),
        what="session active",
    )
    return _one(env, "SELECT id FROM access_sessions WHERE request_id=?", request_id)


def _one(env: dict[str, str], query: str, *args: object) -> object:
    with _db(env) as conn:
        row = conn.execute(query, args).fetchone()
    return row[0] if row else None


def test_serve_answers_health_and_signed_requests_only(server: ServeProcess) -> None:
    assert server.healthy()
    body = server.sender.command_body("help", BOB)
    assert server.sender.post(body, signed=False).status == 401
    answer = server.sender.post(body)
    assert answer.status == 200 and "orders-api" in answer.text


def test_session_is_revoked_within_two_seconds_of_expiry(
    server: ServeProcess, slack: FakeSlack, webhook: WebhookReceiver, env: dict[str, str]
) -> None:
    session_id = _granted_session(server, slack, env)
    expires = datetime.now(UTC) + timedelta(seconds=1)
    with _db(env) as conn:
        conn.execute(
            "UPDATE access_sessions SET expires_at=? WHERE id=?",
            (expires.strftime("%Y-%m-%d %H:%M:%S.%f"), session_id),
        )
    webhook.wait_for(1, action="revoke", timeout=10)
    arrived = datetime.now(UTC)
    lag = (arrived - expires).total_seconds()
    assert lag <= 2.0, f"revoke arrived {lag:.2f}s after expiry"
    eventually(
        lambda: _one(env, "SELECT state FROM access_sessions WHERE id=?", session_id) == "ended"
    )


def test_sessions_that_expired_while_the_bot_was_down_are_revoked_at_start(
    server: ServeProcess, slack: FakeSlack, webhook: WebhookReceiver, env: dict[str, str]
) -> None:
    session_id = _granted_session(server, slack, env)
    server.stop()
    past = datetime.now(UTC) - timedelta(minutes=5)
    with _db(env) as conn:
        conn.execute(
            "UPDATE access_sessions SET expires_at=? WHERE id=?",
            (past.strftime("%Y-%m-%d %H:%M:%S.%f"), session_id),
        )
    assert webhook.actions() == ["grant"]
    server.start()
    webhook.wait_for(1, action="revoke", timeout=10)
    eventually(
        lambda: _one(env, "SELECT state FROM access_sessions WHERE id=?", session_id) == "ended"
    )
    events = [
        row[0]
        for row in _db(env).execute(
            "SELECT event FROM audit_events WHERE session_id=? ORDER BY id", (session_id,)
        )
    ]
    assert events[-3:] == ["expired", "revoked", "closeout_prompted"]


def test_missing_setting_stops_start_with_one_line_naming_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env = {k: v for k, v in env.items() if k != "SLACK_SIGNING_SECRET"}
    result = run_cli_here(tmp_path, env, "serve", "--http")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "prod-access: SLACK_SIGNING_SECRET is not set (see .env.example)",
        CHECK_HINT,
    ]
    bad_port = run_cli_here(tmp_path, {**env, "SLACK_SIGNING_SECRET": "x", "PORT": "http"}, "serve")
    assert bad_port.returncode == 2 and "PORT is invalid" in bad_port.stderr


def test_bad_policy_stops_start_with_file_line_and_reason(
    tmp_path: Path, env: dict[str, str]
) -> None:
    policy = Path(env["POLICY_FILE"])
    good = policy.read_text()
    text = good.replace("max_duration: 30m", "max_duration: 30 minutes")
    policy.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "30 minutes" in row)
    result = run_cli_here(tmp_path, env, "serve", "--http")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"prod-access: {policy}:{line}: systems[0].roles[0].max_duration: "
        "invalid duration '30 minutes' (use e.g. 30s, 20m, 1h, 1h30m, 2d)",
        CHECK_HINT,
    ]
    policy.write_text(good.replace("provider: webhook", "provider: carrier-pigeon"))
    line = next(i for i, row in enumerate(good.splitlines(), 1) if "provider:" in row)
    unknown = run_cli_here(tmp_path, env, "serve", "--http")
    assert unknown.returncode == 2
    assert f"policy.yml:{line}: systems[0].provider: unknown provider 'carrier-pigeon'" in (
        unknown.stderr
    )
    policy.write_text(good.replace("timeout: 10", "timeout: soon"))
    config = run_cli_here(tmp_path, env, "serve", "--http")
    assert config.returncode == 2 and "systems[0].config.timeout" in config.stderr


def test_audit_command_prints_the_trail_as_table_and_json(
    server: ServeProcess, slack: FakeSlack, env: dict[str, str], tmp_path: Path
) -> None:
    import json

    session_id = _granted_session(server, slack, env)
    table = run_cli_here(tmp_path, env, "audit")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["AT", "EVENT", "ACTOR"]
    assert "approved" in table.stdout and LEAD1 in table.stdout
    lines = run_cli_here(tmp_path, env, "audit", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["event"] for r in rows] == ["requested", "approved", "granted"]
    assert rows[2]["session_id"] == session_id and rows[2]["at"].endswith("Z")
    assert rows[0]["actor"] == BOB and rows[0]["ticket"] == "PAY-184"


def test_operator_lists_sessions_and_revokes_one_from_the_command_line(
    server: ServeProcess,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    import getpass
    import json

    session_id = _granted_session(server, slack, env)
    listing = run_cli_here(tmp_path, env, "sessions", "--state", "active")
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[0].split()[:3] == ["ID", "STATE", "USER"]
    assert session_id in listing.stdout and "PAY-184" in listing.stdout

    result = run_cli_here(tmp_path, env, "revoke", session_id, "--note", "laptop stolen")
    actor = f"cli:{getpass.getuser()}"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{session_id}: access ended and revoked at the provider (audited as {actor})"
    )
    assert webhook.wait_for(1, action="revoke")[0].body["session_id"] == session_id
    ended = [
        json.loads(x) for x in run_cli_here(tmp_path, env, "sessions", "--json").stdout.splitlines()
    ]
    assert [(s["id"], s["state"]) for s in ended] == [(session_id, "ended")]
    events = [
        json.loads(line)
        for line in run_cli_here(tmp_path, env, "audit", "--json").stdout.splitlines()
    ]
    admin = next(e for e in events if e["event"] == "admin_ended")
    assert admin["actor"] == actor and admin["detail"] == {"note": "laptop stolen"}
    again = run_cli_here(tmp_path, env, "revoke", "S-NOPE0000")
    assert again.returncode == 2 and "No session S-NOPE0000 exists." in again.stderr


# --- a start that cannot work -------------------------------------------------------------


def _without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


def test_serve_prints_every_start_up_problem_at_once_and_points_to_check(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A bad policy AND a missing signing secret AND a bad port: one line each, in one go, so
    the operator fixes all three before the next try; the database is not created."""
    policy = Path(env["POLICY_FILE"])
    text = policy.read_text().replace("max_duration: 30m", "max_duration: 30 minutes")
    policy.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "30 minutes" in row)
    env = {**_without(env, "SLACK_SIGNING_SECRET", "DATABASE_URL"), "PORT": "http"}
    result = run_cli_here(tmp_path, env, "serve")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "prod-access: PORT is invalid: "
        "Input should be a valid integer, unable to parse string as an integer",
        "prod-access: SLACK_SIGNING_SECRET is not set (see .env.example)",
        f"prod-access: {policy}:{line}: systems[0].roles[0].max_duration: "
        "invalid duration '30 minutes' (use e.g. 30s, 20m, 1h, 1h30m, 2d)",
        "run `prod-access check` to test connections",
    ]
    assert result.stdout == ""
    assert not (tmp_path / "prod-access.db").exists()


def test_serve_refuses_on_call_auto_approval_without_a_pagerduty_token_as_check_does(
    tmp_path: Path, env: dict[str, str]
) -> None:
    policy = Path(env["POLICY_FILE"])
    policy.write_text(
        policy.read_text().replace(
            "{id: write, grant: orders-admin, max_duration: 2h}",
            "{id: write, grant: orders-admin, max_duration: 2h, auto_approve_oncall: PSCHED1}",
        )
    )
    result = run_cli_here(tmp_path, _without(env, "PAGERDUTY_TOKEN", "DATABASE_URL"), "serve")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "prod-access: PAGERDUTY_TOKEN is not set, but auto_approve_oncall is used "
        "(orders-api/write → PSCHED1)",
        "run `prod-access check` to test connections",
    ]


def test_a_missing_policy_file_says_to_copy_the_example(
    tmp_path: Path, env: dict[str, str]
) -> None:
    here = tmp_path / "fresh-clone"
    here.mkdir()
    result = run_cli_here(here, _without(env, "POLICY_FILE", "DATABASE_URL"), "serve", "--http")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "prod-access: policy.yml: cannot read policy file: No such file or directory; "
        "start from the example: `cp policy.example.yml policy.yml`",
        CHECK_HINT,
    ]
    assert list(here.iterdir()) == []  # no prod-access.db


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked"])
def test_a_bot_token_slack_refuses_stops_serve_with_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, error: str
) -> None:
    """Not a bot that starts and answers the first slash command with HTTP 500."""
    slack.fail("auth.test", error)
    result = run_cli_here(tmp_path, _without(env, "DATABASE_URL"), "serve", "--http")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"prod-access: Slack answered {error}: check SLACK_BOT_TOKEN"
    ]
    assert [call.method for call in slack.calls] == ["auth.test"]
    assert "xoxb-resilience-test" not in result.stderr
    assert not (tmp_path / "prod-access.db").exists()


def test_a_slack_api_url_nobody_answers_stops_serve_with_one_line_naming_it_and_the_url(
    tmp_path: Path, env: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/"
    result = run_cli_here(
        tmp_path, {**_without(env, "DATABASE_URL"), "SLACK_API_URL": url}, "serve"
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"prod-access: Slack unreachable at {url}: ")
    assert line.endswith(": check SLACK_API_URL and the network")
    assert not (tmp_path / "prod-access.db").exists()
