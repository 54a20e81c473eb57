"""What operators read in the logs: JSON lines in production, every line about an access
carrying its request and session ids, and no token, signing secret or provider secret, ever.

The story runs through a real `prod-access serve` process (gunicorn) with LOG_FORMAT=json and
LOG_LEVEL=debug, so Bolt's and slack_sdk's debug lines (which echo what they send) are in it
too; on PostgreSQL the database URL carries a password as well.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from slack_bolt import BoltRequest
from slack_sdk import WebClient
from structlog.testing import LogCapture

from app.logging import bound, ids_of, setup_logging, wants_json
from app.slack.after_ack import AfterAck
from app.slack.app import BoundApp
from tests.conftest import BOB, LEAD1, SIGNING_SECRET, WEBHOOK_SECRET, eventually
from tests.fakes.serve import ServeProcess, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import text_input
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.test_resilience import grant, query, session_state, set_expiry

BOT_TOKEN = "xoxb-1234567890-0987654321-LogStoryBotToken"
PROVIDER_DSN_PASSWORD = "ledger-Pa55word-never-logged"
DATABASE_PASSWORD = "db-Pa55word-never-logged"
LEDGER_SYSTEM = """\
  - id: ledger-db
    name: Ledger database
    provider: postgres
    config: {dsn_env: LOGTEST_LEDGER_DSN}
    identity: '{email_local}'
    email_domains: [example.com]
    approvers: [U0LEAD1]
    roles:
      - {id: read, grant: ledger_readonly, max_duration: 30m}
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serve.db'}"
    dsn: str = request.getfixturevalue("pg_database")
    # The server trusts local connections, so any password works; it must never be printed.
    return dsn.replace("postgres@", f"postgres:{DATABASE_PASSWORD}@", 1)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _about(events: list[dict], row_id: str) -> list[dict]:
    """Lines that mention this request or session, except the Home tab's traffic: a Home tab
    lists all of a person's accesses, it is about none of them in particular."""
    home = ("'type': 'home'", '"type": "home"')
    return [
        e
        for e in events
        if row_id in json.dumps(e) and not any(mark in str(e["event"]) for mark in home)
    ]


def test_a_whole_access_logs_json_lines_with_its_ids_and_no_secret(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, database_url: str
) -> None:
    ledger_dsn = f"postgresql://access_admin:{PROVIDER_DSN_PASSWORD}@127.0.0.1:9/ledger"
    env = serve_env(
        tmp_path,
        slack,
        webhook,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        DATABASE_URL=database_url,
        LOG_FORMAT="json",
        LOG_LEVEL="debug",
        LOGTEST_LEDGER_DSN=ledger_dsn,
    )
    policy = Path(env["POLICY_FILE"])
    policy.write_text(policy.read_text() + LEDGER_SYSTEM)
    server = ServeProcess(tmp_path, env)
    server.start()
    try:
        session_id = _whole_access(server, slack, webhook, env)
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode == 0, server.stderr()
    [(request_id,)] = query(env, "SELECT request_id FROM access_sessions WHERE id=?", session_id)
    stdout, stderr = server.stdout(), server.stderr()

    for secret in (BOT_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, PROVIDER_DSN_PASSWORD):
        assert secret not in stdout + stderr, f"{secret} was logged"
    assert DATABASE_PASSWORD not in stdout + stderr
    assert stdout == ""

    events = []
    for line in _lines(stderr):
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    assert len(events) > 50, "debug lines of Bolt, slack_sdk and the bot are in the log"

    # A line about the session carries its session_id, or (when it was written before the
    # session was known, e.g. while the approval updates the card) its request's request_id.
    about_session = _about(events, session_id)
    assert len(about_session) > 10
    unbound = [
        e
        for e in about_session
        if e.get("session_id") != session_id and e.get("request_id") != request_id
    ]
    assert not unbound, "lines about the session without its ids:\n" + "\n".join(
        json.dumps(e)[:300] for e in unbound
    )
    assert sum(e.get("session_id") == session_id for e in about_session) > 10
    unbound = [e for e in _about(events, request_id) if e.get("request_id") != request_id]
    assert not unbound, "lines about the request without its request_id:\n" + "\n".join(
        json.dumps(e)[:300] for e in unbound
    )
    notices = {e.get("notice") for e in events if e.get("session_id") == session_id}
    assert {"session_granted", "session_ended", "closeout_recorded"} <= notices
    clicks = [e for e in events if e.get("slack_action") == "approve_request"]
    assert clicks and all(e["user_id"] == LEAD1 and e["request_id"] == request_id for e in clicks)
    assert len({e["slack_request_id"] for e in clicks}) == 1  # one click, one Slack request


def _whole_access(
    server: ServeProcess, slack: FakeSlack, webhook: WebhookReceiver, env: dict[str, str]
) -> str:
    """Ask, approve, grant, expire (revoke), write the closeout note; the session id."""
    session_id = grant(server, env, "orders-api write 1h PAY-70 rotate the keys", BOB)
    set_expiry(env, session_id, datetime.now(UTC))
    webhook.wait_for(1, action="revoke", timeout=10)
    eventually(lambda: session_state(env, session_id) == "ended", what="session ended")
    assert server.sender.click("open_closeout", session_id, BOB, channel="D0BOB").status == 200
    [opened] = slack.wait_for("views.open", lambda a: a["view"].get("callback_id") == "closeout")
    values = {
        "changes": text_input("rotated the keys", "changes_input"),
        "followups": text_input("", "followups_input"),
    }
    assert server.sender.submit(opened["view"], values, BOB).status == 200
    closeout = "SELECT closeout_state FROM access_sessions WHERE id=?"
    eventually(lambda: query(env, closeout, session_id) == [("closed_out",)], what="closeout")
    slack.wait_for(
        "chat.postMessage", lambda a: bool(a.get("thread_ts")) and "rotated the keys" in a["text"]
    )
    return session_id


# --- the ids, in-process ------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    """Every log event, with the contextvars merged in, as the real configuration does."""
    capture = LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    yield capture
    structlog.configure(**previous)


def test_a_slack_request_and_the_work_it_hands_on_log_with_its_ids(
    captured: LogCapture, slack: FakeSlack
) -> None:
    log = structlog.get_logger("test")
    later = AfterAck(threads=2)
    app = BoundApp(
        client=WebClient(token="xoxb-in-process", base_url=slack.url),
        signing_secret="unused",
        request_verification_enabled=False,
        token_verification_enabled=False,
        process_before_response=True,
    )

    def grant(session_id: str) -> None:
        log.info("granting", thread=threading.current_thread().name)

    @app.action("approve_request")
    def on_approve(ack: Any, action: dict) -> None:
        ack()
        log.info("acked")
        later(grant, "S-4M8D2QXA")  # e.g. the session the approval created
        log.info("handed_on")

    payload = {
        "type": "block_actions",
        "user": {"id": LEAD1},
        "actions": [{"action_id": "approve_request", "value": "R-7K3Q9X2M"}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    headers = {"content-type": ["application/x-www-form-urlencoded"]}
    assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200
    later.shutdown()
    log.info("after_the_request")

    by_event = {e["event"]: e for e in captured.entries}
    acked, handed_on = by_event["acked"], by_event["handed_on"]
    assert acked["slack_type"] == "block_actions" and acked["slack_action"] == "approve_request"
    assert acked["user_id"] == LEAD1 and acked["request_id"] == "R-7K3Q9X2M"
    assert "session_id" not in acked and handed_on["session_id"] == "S-4M8D2QXA"
    granting = by_event["granting"]
    assert granting["thread"].startswith("after-ack")
    assert granting["slack_request_id"] == acked["slack_request_id"]
    assert granting["request_id"] == "R-7K3Q9X2M" and granting["session_id"] == "S-4M8D2QXA"
    after = by_event["after_the_request"]
    assert not {"slack_request_id", "request_id", "session_id"} & set(after)


def test_ids_of_reads_rows_and_id_strings_only() -> None:
    from app.models import AccessSession

    session = AccessSession(id="S-4M8D2QXA", request_id="R-7K3Q9X2M")
    assert ids_of(session) == {"session_id": "S-4M8D2QXA", "request_id": "R-7K3Q9X2M"}
    assert ids_of("R-7K3Q9X2M", None, 42, "PAY-184", "S-bad") == {"request_id": "R-7K3Q9X2M"}


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_json_unless_stderr_is_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert not wants_json("auto") and wants_json("json") and not wants_json("console")
    monkeypatch.undo()
    assert wants_json("auto")  # pytest's captured stderr is not a terminal

    # Lines go to a stream of the test's own; other threads of this process (left by earlier
    # tests) may log at the same time, so only the lines written here are looked at.
    out = io.StringIO()
    setup_logging("auto", "info", stream=out)
    with bound(session_id="S-4M8D2QXA"):
        structlog.get_logger("test").warning("revoke_failed", error="HTTP 503")
    logging.getLogger("slack_sdk").warning("rate limited")
    events = [json.loads(line) for line in _lines(out.getvalue())]
    first, second = (e for e in events if e["event"] in ("revoke_failed", "rate limited"))
    assert first["event"] == "revoke_failed" and first["session_id"] == "S-4M8D2QXA"
    assert first["level"] == "warning" and first["timestamp"].endswith("Z")
    assert second["event"] == "rate limited" and second["logger"] == "slack_sdk"

    terminal = Terminal()
    setup_logging("auto", "info", stream=terminal)
    structlog.get_logger("test").info("granted", session_id="S-4M8D2QXA")
    structlog.get_logger("test").debug("below LOG_LEVEL")
    [line] = [line for line in _lines(terminal.getvalue()) if "granted" in line]
    assert not line.startswith("{") and "session_id" in line and "S-4M8D2QXA" in line
    assert "below LOG_LEVEL" not in terminal.getvalue()


# --- one writer ---------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_lines_written_at_once_by_many_threads_through_structlog_and_logging_stay_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stderr is a pipe in production (a container, systemd): the bot's own lines and the
    libraries' are written side by side by many threads, and each must stay one JSON line,
    long ones too (a traceback, a payload: past the 8 KiB that stderr passes on at once)."""
    import logging
    import os
    import sys

    threads, per_thread = 8, 300
    read_end, write_end = os.pipe()
    received: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            received.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    pipe = os.fdopen(write_end, "w", encoding="utf-8", buffering=1)  # line-buffered, as stderr
    monkeypatch.setattr(sys, "stderr", pipe)
    setup_logging("json", "info")
    start = threading.Barrier(threads)

    def write(n: int) -> None:
        ours, library = structlog.get_logger("test"), logging.getLogger("slack_sdk.test")
        start.wait()
        for i in range(per_thread):
            if i % 2:
                ours.warning("ours", thread=n, i=i, text="x" * (i % 3) * 6000)
            else:
                library.warning("library %d %d %s", n, i, "y" * (i % 4) * 3000)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        writers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
    finally:
        sys.setswitchinterval(switch)
        monkeypatch.undo()
        pipe.close()
        reader.join()
        os.close(read_end)

    lines = b"".join(received).decode().split("\n")
    assert lines.pop() == ""  # the output ends with a whole line
    seen = set()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"not one JSON object: {line[:300]!r}")
        assert isinstance(event, dict) and event["level"] == "warning", line
        if event["event"] == "ours":
            seen.add((event["thread"], event["i"]))
        else:
            _, n, i, *_ = event["event"].split()
            assert event["logger"] == "slack_sdk.test"
            seen.add((int(n), int(i)))
    assert len(lines) == threads * per_thread
    assert seen == {(n, i) for n in range(threads) for i in range(per_thread)}  # none lost
