"""A replica killed with SIGKILL in the middle of a provider call leaves an intent (`granting`,
`revoking`) that the next start finishes: the call is made again with the same Idempotency-Key,
and the session ends up recorded exactly once. The real server, a real SIGKILL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import BOB, LEAD1, eventually
from tests.fakes.serve import ServeProcess, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.test_resilience import grant, query, serve, session_state, set_expiry

__all__ = ["serve"]  # the fixture, used by name below


def _keys(webhook: WebhookReceiver, action: str) -> list[str]:
    return [r.headers["idempotency-key"] for r in webhook.requests if r.body["action"] == action]


def _events(env: dict[str, str], session_id: str) -> list[str]:
    rows = query(env, "SELECT event FROM audit_events WHERE session_id=? ORDER BY seq", session_id)
    return [event for (event,) in rows]


def test_killed_during_the_grant_the_next_start_grants_once_more_and_records_it_once(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, serve: list[ServeProcess]
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    first = ServeProcess(tmp_path, env)
    serve.append(first)
    first.start()
    answer = first.sender.command("orders-api write 1h PAY-70 hotfix", BOB)
    request_id = answer.text.split("`")[1]
    eventually(
        lambda: query(env, "SELECT card_ts FROM access_requests WHERE id=?", request_id)[0][0]
    )
    webhook.delay(5.0)  # the grant is in flight when the process dies
    first.sender.click("approve_request", request_id, LEAD1)
    webhook.wait_for(1, action="grant", timeout=10)
    first.kill()

    sessions = query(env, "SELECT id, state FROM access_sessions WHERE request_id=?", request_id)
    assert [state for _, state in sessions] == ["granting"]  # the intent, not a guess
    session_id = sessions[0][0]

    second = ServeProcess(tmp_path, env)
    serve.append(second)
    second.start()
    eventually(lambda: session_state(env, session_id) == "active", timeout=15, what="active")
    assert _keys(webhook, "grant") == [f"{session_id}:grant"] * 2  # the same key: idempotent
    assert _events(env, session_id).count("granted") == 1


def test_killed_during_the_revoke_the_next_start_revokes_and_records_it_once(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, serve: list[ServeProcess]
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    first = ServeProcess(tmp_path, env)
    serve.append(first)
    first.start()
    session_id = grant(first, env, "orders-api write 1h PAY-71 hotfix", BOB)
    webhook.delay(5.0)  # the revoke is in flight when the process dies
    set_expiry(env, session_id, datetime.now(UTC))
    webhook.wait_for(1, action="revoke", timeout=10)
    first.kill()
    assert session_state(env, session_id) == "revoking"

    second = ServeProcess(tmp_path, env)
    serve.append(second)
    second.start()
    eventually(lambda: session_state(env, session_id) == "ended", timeout=15, what="ended")
    assert _keys(webhook, "revoke") == [f"{session_id}:revoke"] * 2
    assert webhook.held() == set()
    events = _events(env, session_id)
    assert events.count("expired") == 1 and events.count("revoked") == 1
