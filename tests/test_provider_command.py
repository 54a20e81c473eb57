"""The command adapter with small Python scripts the tests write: the contract, what the command
receives (and what it does not), exit statuses, the timeout that kills the whole process group,
no shell anywhere, and through the bot: output in the audit trail and a revoke whose command
"succeeds" without removing the access, caught by the check and retried."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app import audit, clock
from app.db import transaction
from app.models import SessionState
from app.policy import PolicyError, load_policy
from app.providers.base import ProviderError, build_providers, payload
from app.providers.command import CommandConfig, CommandProvider
from tests.conftest import BOB, LEAD1, BotHarness, make_settings, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.provider_contract import access_for, grant_check_revoke_check

# Keeps "identity grant" lines in the file $ACCESS_STATE. While the file $ACCESS_STATE.broken
# exists, revoke reports success and changes nothing (the bug the revoke check must catch).
LEDGER = """\
import json, os, sys
state = os.environ["ACCESS_STATE"]
session = json.load(sys.stdin)
action = os.environ["PROD_ACCESS_ACTION"]
assert session["action"] == action, (session["action"], action)
key = os.environ["PROD_ACCESS_IDENTITY"] + " " + os.environ["PROD_ACCESS_GRANT"]
held = set(open(state).read().splitlines()) if os.path.exists(state) else set()
if action == "check":
    sys.exit(0 if key in held else 1)
if action == "grant":
    held.add(key)
elif not os.path.exists(state + ".broken"):
    held.discard(key)
open(state, "w").write("\\n".join(sorted(held)))
print(f"{action}: {key} for {session['session_id']} (ticket {session['ticket']})")
"""


def script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def command(argv: list[str], **overrides: object) -> CommandProvider:
    return CommandProvider(CommandConfig.model_validate({"argv": argv, **overrides}))


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "held.txt"
    monkeypatch.setenv("ACCESS_STATE", str(path))
    return path


def _held(state: Path) -> set[str]:
    return set(state.read_text().splitlines()) if state.exists() else set()


def test_command_grants_checks_and_revokes_through_the_script(tmp_path: Path, state: Path) -> None:
    ledger = script(tmp_path, "ledger.py", LEDGER)
    provider = command([sys.executable, str(ledger)], env=["ACCESS_STATE"])
    grant_check_revoke_check(
        provider, access_for("bob", "sudo-ops"), lambda: "bob sudo-ops" in _held(state)
    )
    assert provider.grant(access_for("bob", "sudo-ops")) == (
        "grant: bob sudo-ops for S-TEST0001 (ticket PAY-1)"
    )


def test_command_gets_the_session_on_stdin_and_only_the_variables_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "seen.json"
    spy = script(
        tmp_path,
        "spy.py",
        f"""\
        import json, os, sys
        got = {{"stdin": json.load(sys.stdin), "env": dict(os.environ)}}
        json.dump(got, open({str(seen)!r}, "w"))
        """,
    )
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    monkeypatch.setenv("OPS_API_KEY", "passed-on-purpose")
    access = access_for("bob", "sudo-ops", system="ops-box", role="admin")
    command([sys.executable, str(spy)], env=["OPS_API_KEY"]).revoke(access)

    got = json.loads(seen.read_text())
    assert got["stdin"] == json.loads(json.dumps(payload("revoke", access)))
    env = got["env"]
    assert {k: v for k, v in env.items() if k.startswith("PROD_ACCESS_")} == {
        "PROD_ACCESS_ACTION": "revoke",
        "PROD_ACCESS_SESSION_ID": "S-TEST0001",
        "PROD_ACCESS_IDENTITY": "bob",
        "PROD_ACCESS_GRANT": "sudo-ops",
        "PROD_ACCESS_SYSTEM": "ops-box",
        "PROD_ACCESS_ROLE": "admin",
    }
    assert env["OPS_API_KEY"] == "passed-on-purpose" and "SLACK_BOT_TOKEN" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_user_text_reaches_the_command_as_data_never_through_a_shell(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    spy = script(
        tmp_path,
        "spy.py",
        f"""\
        import json, os, sys
        got = [sys.argv[1:], json.load(sys.stdin)["reason"], os.environ["PROD_ACCESS_IDENTITY"]]
        json.dump(got, open({str(seen)!r}, "w"))
        """,
    )
    pwned = tmp_path / "pwned"
    hostile = f"$(touch {pwned}); touch {pwned} `touch {pwned}`"
    access = access_for(f"bob; touch {pwned}", "sudo-ops")
    access = type(access)(**{**access.__dict__, "reason": hostile})
    command([sys.executable, str(spy), "--system", "$HOME", "*"]).grant(access)
    assert json.loads(seen.read_text()) == [["--system", "$HOME", "*"], hostile, access.identity]
    assert not pwned.exists()


def test_failing_command_is_an_error_carrying_the_end_of_its_output(tmp_path: Path) -> None:
    noisy = script(
        tmp_path,
        "noisy.py",
        """\
        import sys
        print("x" * 5000, flush=True)
        print("permission denied for group sudo-ops", file=sys.stderr)
        sys.exit(3)
        """,
    )
    with pytest.raises(ProviderError) as failed:
        command([sys.executable, str(noisy)]).grant(access_for("bob", "sudo-ops"))
    message = str(failed.value)
    assert message.startswith("command (grant) exited 3: …xxx")
    assert message.endswith("permission denied for group sudo-ops")
    assert len(message) <= 300

    unsure = script(tmp_path, "unsure.py", "import sys; print('ldap down'); sys.exit(2)\n")
    with pytest.raises(ProviderError, match=r"^command \(check\) exited 2: ldap down$"):
        command([sys.executable, str(unsure)]).check(access_for("bob", "sudo-ops"))


def test_command_running_too_long_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    stuck = script(
        tmp_path,
        "stuck.py",
        f"""\
        import subprocess, time
        child = subprocess.Popen(["sleep", "3600"])  # inherits stdout: keeps the pipe open
        open({str(child_pid)!r}, "w").write(str(child.pid))
        print("waiting for the directory", flush=True)
        time.sleep(3600)
        """,
    )
    outcome: list[BaseException] = []

    def revoke() -> None:
        try:
            command([sys.executable, str(stuck)], timeout=1).revoke(access_for("bob", "sudo-ops"))
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    revoking = threading.Thread(target=revoke, daemon=True)
    revoking.start()
    revoking.join(timeout=30)  # one that waited for a sleep (or the child's pipe) takes an hour
    assert not revoking.is_alive(), "the revoke waited for the command instead of killing it"
    [error] = outcome
    with pytest.raises(ProviderError) as timeout:
        raise error
    assert str(timeout.value) == ("command timed out after 1s (killed): waiting for the directory")
    assert timeout.value.retryable
    assert _gone(int(child_pid.read_text()))


def _gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_bad_command_config_stops_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "x" * 16)
    monkeypatch.delenv("ACCESS_STATE", raising=False)

    def start(config: str) -> str:
        system = f"""\
  - id: ops-box
    name: Ops box
    provider: command
    config: {config}
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: sudo-ops}}
"""
        policy = write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook", system)
        with pytest.raises(PolicyError) as stopped:
            build_providers(load_policy(policy))
        return str(stopped.value)

    assert start("{argv: [/nonexistent/grant-tool]}").endswith(
        "systems[1].config: argv[0] '/nonexistent/grant-tool' is not an executable file"
    )
    assert start(f"{{argv: ['{sys.executable}'], env: [ACCESS_STATE]}}").endswith(
        "systems[1].config: environment variable ACCESS_STATE (named in env) is not set"
    )
    assert "systems[1].config.argv: List should have at least 1 item" in start("{argv: []}")
    assert "systems[1].config.argv: Input should be a valid list" in start(
        "{argv: 'grant-tool --all'}"
    )


@pytest.fixture
def command_bot(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, state: Path
) -> Iterator[BotHarness]:
    ledger = script(tmp_path, "ledger.py", LEDGER)
    system = f"""\
  - id: ops-box
    name: Ops box sudo
    provider: command
    config: {{argv: ['{sys.executable}', '{ledger}'], timeout: 5, env: [ACCESS_STATE]}}
    identity: '{{email_local}}'
    email_domains: [example.com]
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: sudo-ops, max_duration: 1h}}
"""
    harness = BotHarness(
        make_settings(tmp_path, slack, write_policy(tmp_path / "p.yml", webhook.url, system)), slack
    )
    yield harness
    harness.stop()


def test_revoke_that_reports_success_but_leaves_access_is_caught_and_retried(
    command_bot: BotHarness, state: Path
) -> None:
    request_id = command_bot.quick_request("ops-box admin 1h OPS-7 clear the queue", BOB)
    command_bot.send.click("approve_request", request_id, LEAD1)
    session = command_bot.wait_session(request_id, SessionState.active)
    assert _held(state) == {"bob sudo-ops"}

    Path(f"{state}.broken").touch()
    clock.travel(timedelta(hours=1, seconds=1))
    command_bot.sweep()
    failing = command_bot.wait_session(request_id, SessionState.revoke_failing)
    assert failing.last_error == "revoke did not take effect: access still present"
    command_bot.slack.wait_for(
        "chat.postMessage",
        lambda a: "Revoke failed (attempt 1): revoke did not take effect" in a.get("text", ""),
    )

    Path(f"{state}.broken").unlink()
    clock.travel(timedelta(seconds=2))
    command_bot.sweep()
    command_bot.wait_session(request_id, SessionState.ended)
    assert _held(state) == set()
    with transaction(command_bot.ctx.db) as db:
        events = {e.event: e.detail for e in audit.events(db, request_id)}
    assert events["granted"]["provider_note"] == (
        f"grant: bob sudo-ops for {session.id} (ticket OPS-7)"
    )
    assert events["revoke_failed"]["error"] == "revoke did not take effect: access still present"
    assert (
        events["revoked"]["provider_note"]
        == f"revoke: bob sudo-ops for {session.id} (ticket OPS-7)"
    )
