"""The real `prod-access serve --http` (gunicorn) reloading its policy without a restart: on
SIGHUP, and (POLICY_RELOAD_ON_CHANGE) when the file changes in place, as a Kubernetes ConfigMap
does. The same worker goes on serving; the session granted before is untouched."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.policy_reload import file_sha256
from tests.conftest import BOB, eventually
from tests.fakes.serve import ServeProcess, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.test_policy_reload import with_deploy_role
from tests.test_serve import _granted_session, _one


@pytest.fixture
def env(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> dict[str, str]:
    return serve_env(tmp_path, slack, webhook, POLICY_RELOAD_POLL_SECONDS="0.5")


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[ServeProcess]:
    srv = ServeProcess(tmp_path, env)
    srv.start()
    yield srv
    srv.stop()


def _logged(server: ServeProcess, event: str) -> list[dict]:
    lines = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def test_serve_reloads_on_sighup_in_the_same_worker_with_sessions_intact(
    server: ServeProcess, slack: FakeSlack, env: dict[str, str]
) -> None:
    session_id = _granted_session(server, slack, env)
    refused = server.sender.command("orders-api deploy 30m PAY-7 ship the fix", BOB)
    assert "Unknown access 'deploy'" in refused.text
    workers = server.stderr().count("Booting worker")
    assert workers == 1
    new = with_deploy_role(Path(env["POLICY_FILE"]))
    assert server.proc is not None

    server.proc.send_signal(signal.SIGHUP)

    (reloaded,) = eventually(lambda: _logged(server, "policy_reloaded"), 15, "policy_reloaded")
    assert reloaded["new_sha256"] == new and reloaded["trigger"] == "SIGHUP"
    assert server.healthy()  # the same master, alive
    assert server.stderr().count("Booting worker") == workers  # and the same worker
    answer = server.sender.command("orders-api deploy 30m PAY-7 ship the fix", BOB)
    assert answer.status == 200 and "on its way" in answer.text
    assert _one(env, "SELECT state FROM access_sessions WHERE id=?", session_id) == "active"
    detail = _one(env, "SELECT detail_json FROM audit_events WHERE event='policy_changed'")
    assert json.loads(str(detail))["new_sha256"] == new


def test_serve_reloads_a_file_changed_in_place_when_told_to_watch_it(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    env = serve_env(
        tmp_path,
        slack,
        webhook,
        POLICY_RELOAD_POLL_SECONDS="0.5",
        POLICY_RELOAD_ON_CHANGE="true",
    )
    server = ServeProcess(tmp_path, env)
    server.start()
    try:
        new = with_deploy_role(Path(env["POLICY_FILE"]))
        (reloaded,) = eventually(lambda: _logged(server, "policy_reloaded"), 15, "the reload")
        assert reloaded["trigger"] == "file changed" and reloaded["new_sha256"] == new
        answer = server.sender.command("orders-api deploy 30m PAY-8 ship the fix", BOB)
        assert "on its way" in answer.text
        assert file_sha256(env["POLICY_FILE"]) == new
    finally:
        server.stop()
