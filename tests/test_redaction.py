"""Secrets in messages: whatever a provider says (an error, a command's output, a note), no
configured secret reaches the approval card, the requester's DM, the audit trail or a log line;
`[secret]` stands where it was. Through the running bot and signed clicks: a `command` provider
printing its own `env:` secret, and a `postgres` system whose admin DSN holds a password psycopg
echoes back in its error. Then the redaction rules themselves (DSN forms, cutting, the registry
the log processor shares).
"""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text

from app.db import transaction
from app.logging import mask, setup_logging
from app.models import SessionState
from app.text import redact, register_dsn, register_secret, short, tail
from tests.blocks_helpers import shows
from tests.conftest import BOB, LEAD1, BotHarness, make_settings, write_policy
from tests.fakes.postgres import PostgresServer
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

OPS_API_KEY = "ops-key-Zq8w3mN5vX1c"
MARK = "[secret]"

# Fails a grant while $OPS_FAIL_MARKER exists, printing the key it was given (as a careless
# script does when its login is refused); otherwise succeeds and says which key it used.
CARELESS = """\
import json, os, sys
json.load(sys.stdin)
action, key = os.environ["PROD_ACCESS_ACTION"], os.environ["OPS_API_KEY"]
if action == "check":  # 0: present, 1: absent (a refused login granted nothing)
    sys.exit(1 if os.path.exists(os.environ["OPS_FAIL_MARKER"]) else 0)
if action == "grant" and os.path.exists(os.environ["OPS_FAIL_MARKER"]):
    print(f"login refused for key {key}", file=sys.stderr)
    sys.exit(3)
print(f"{action} done with key {key}")
"""


def _log_like_production() -> None:
    """JSON lines at debug level, as production can run: Bolt's and slack_sdk's lines, which
    echo every card and DM sent, are in them too. Called in the test itself, once capsys holds
    stderr, so the lines are captured."""
    setup_logging("json", "debug")


def _bot(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, system: str) -> BotHarness:
    policy = write_policy(tmp_path / "policy.yml", webhook.url, system)
    return BotHarness(make_settings(tmp_path, slack, policy), slack)


@pytest.fixture
def careless_bot(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[BotHarness]:
    script = tmp_path / "careless.py"
    script.write_text(CARELESS)
    marker = tmp_path / "refuse-logins"
    marker.touch()
    monkeypatch.setenv("OPS_API_KEY", OPS_API_KEY)
    monkeypatch.setenv("OPS_FAIL_MARKER", str(marker))
    system = f"""\
  - id: ops-box
    name: Ops box sudo
    provider: command
    config: {{argv: ['{sys.executable}', '{script}'], env: [OPS_API_KEY, OPS_FAIL_MARKER]}}
    identity: '{{email_local}}'
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: sudo-ops, max_duration: 1h}}
"""
    harness = _bot(tmp_path, slack, webhook, system)
    yield harness
    harness.stop()


def _grant_failure_shown(bot: BotHarness, request_id: str, *, unknown: bool = False) -> str:
    """The card and the requester's DM after a failed grant (`unknown`: one whose outcome the
    provider could not tell either); the error as stored."""
    bot.send.click("approve_request", request_id, LEAD1)
    state = SessionState.grant_unknown if unknown else SessionState.grant_failed
    failed = bot.wait_session(request_id, state)
    on_card = "Grant outcome unknown" if unknown else "Grant failed"
    in_dm = "checked again" if unknown else "Nothing was granted"
    card = bot.slack.wait_for("chat.update", lambda a: shows(a.get("blocks"), on_card))
    assert shows(card[-1]["blocks"], MARK)
    dm = bot.slack.wait_for(
        "chat.postMessage", lambda a: a["channel"] == BOB and in_dm in a["text"]
    )
    assert MARK in dm[-1]["text"]
    return failed.last_error or ""


def _audit_rows(bot: BotHarness) -> str:
    with transaction(bot.ctx.db) as db:
        rows = db.execute(text("SELECT * FROM audit_events ORDER BY id")).all()
    return "\n".join(str(tuple(row)) for row in rows)


def _nowhere(bot: BotHarness, logs: str, secret: str) -> None:
    """Not in any call to Slack, any audit row or any log line; `[secret]` in each instead."""
    slack_calls = json.dumps([call.args for call in bot.slack.calls])
    audit_rows = _audit_rows(bot)
    for where, seen in (("Slack", slack_calls), ("audit", audit_rows), ("logs", logs)):
        assert secret not in seen, f"the secret reached {where}"
        assert MARK in seen, f"no {MARK} in {where}"


@pytest.mark.usefixtures("restore_logging")
def test_a_command_printing_its_secret_shows_secret_marker_on_card_dm_audit_and_logs(
    careless_bot: BotHarness, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _log_like_production()
    request_id = careless_bot.quick_request("ops-box admin 1h OPS-7 rotate the keys", BOB)
    error = _grant_failure_shown(careless_bot, request_id)
    assert error == f"command (grant) exited 3: login refused for key {MARK}"

    (tmp_path / "refuse-logins").unlink()
    session = careless_bot.session_for(request_id)
    assert session is not None
    careless_bot.send.click("retry_grant", session.id, LEAD1)
    careless_bot.wait_session(request_id, SessionState.active)
    assert f"grant done with key {MARK}" in _audit_rows(careless_bot)  # the provider's note

    _nowhere(careless_bot, capsys.readouterr().err, OPS_API_KEY)


# A stray % (or a space) in a DSN's password: psycopg refuses the DSN and quotes the password
# in its error, e.g. `invalid percent-encoded token: "Pg%ZZ-admin-pw-4711"`.
ECHOED_PASSWORDS = ["Pg%ZZ-admin-pw-4711", "Pg admin pw 4711"]
_databases = itertools.count(1)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("password", ECHOED_PASSWORDS, ids=["stray-percent", "space"])
def test_a_dsn_password_psycopg_echoes_shows_secret_marker_on_card_dm_audit_and_logs(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    pg_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    password: str,
) -> None:
    _log_like_production()
    dsn = pg_server.create_database(f"echo_{next(_databases)}")
    monkeypatch.setenv("ECHO_PG_ADMIN_DSN", dsn.replace("://postgres@", f"://postgres:{password}@"))
    system = textwrap.dedent(
        """\
          - id: checkout-db
            name: Checkout database
            provider: postgres
            config: {dsn_env: ECHO_PG_ADMIN_DSN}
            identity: '{email_local}'
            approvers: [U0LEAD1]
            roles:
              - {id: read, grant: checkout_readonly, max_duration: 30m}
        """
    )
    bot = _bot(tmp_path, slack, webhook, textwrap.indent(system, "  "))
    try:
        request_id = bot.quick_request("checkout-db read 30m PAY-9 look at a refund", BOB)
        # PostgreSQL could not be reached (nor asked), so the outcome is not known
        error = _grant_failure_shown(bot, request_id, unknown=True)
        assert error.startswith("cannot connect to PostgreSQL: ") and MARK in error
        _nowhere(bot, capsys.readouterr().err, password)
    finally:
        bot.stop()


# --- the rules --------------------------------------------------------------------------


def test_dsn_passwords_are_masked_as_written_and_percent_decoded() -> None:
    register_dsn("postgresql://admin:p%40ss-w0rd-url@db.internal/checkout")
    assert redact("auth failed for p%40ss-w0rd-url / p@ss-w0rd-url") == (
        f"auth failed for {MARK} / {MARK}"
    )
    register_dsn(r"host=db user=admin password='it\'s-kv-secret' dbname=checkout")
    assert redact("it's-kv-secret") == MARK
    # A DSN nobody registered is still masked by its shape, in both forms.
    assert redact("postgresql://ops:unregistered-1@db/x and password=unregistered-2 host=db") == (
        f"postgresql://ops:{MARK}@db/x and password={MARK} host=db"
    )


def test_cutting_an_output_never_leaves_part_of_a_secret() -> None:
    register_secret("tail-secret-0123456789")
    output = "x" * 2000 + "\nlogin refused for tail-secret-0123456789"
    assert tail(output, 12) == "…or " + MARK
    assert short("key tail-secret-0123456789 and more", 16) == f"key {MARK} an…"


def test_values_shorter_than_six_characters_are_not_masked_by_value() -> None:
    """Masking "12345" everywhere would garble ids and times: such a value is shown, except
    where a DSN's shape marks it as a password."""
    register_secret("12345")
    assert redact("session 12345") == "session 12345"
    assert redact("postgresql://ops:12345@db/x") == f"postgresql://ops:{MARK}@db/x"


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_use_the_same_registry(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret("registry-shared-secret")
    assert mask("a registry-shared-secret b") == f"a {MARK} b"
    setup_logging("json", "info")
    structlog.get_logger("test").warning("provider said registry-shared-secret")
    assert json.loads(capsys.readouterr().err)["event"] == f"provider said {MARK}"
