"""No standing access: a grant that landed although its answer was lost is found and owned or
ended; access held for a session whose grant failed is drift; a policy that drops a system with
open sessions is refused at start, and `prod-access revoke --policy` ends those sessions first.

Real bot over signed HTTP, the fake Slack Web API, and a webhook target that keeps state like a
real one (it can apply a change and then lose, delay or fail its answer).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from app import audit, clock
from app.db import transaction
from app.jobs.reconcile import reconcile
from app.models import AccessSession, EndReason, SessionState
from app.policy import PolicyError
from app.runtime import build_bot
from tests.blocks_helpers import offers, shows
from tests.conftest import BOB, LEAD1, WEBHOOK_SECRET, BotHarness, make_settings, run_cli_here
from tests.fakes.policy import write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

HELD = ("bob@example.com", "orders-viewer")


def _events(bot: BotHarness, request_id: str) -> list[tuple[str, dict]]:
    with transaction(bot.ctx.db) as db:
        return [(e.event, e.detail) for e in audit.events(db, request_id)]


def _approved(bot: BotHarness, text: str = "orders-api read 30m PAY-1 look") -> str:
    request_id = bot.quick_request(text, BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    return request_id


# --- a grant whose answer was lost ------------------------------------------------------------


def test_grant_applied_but_timed_out_is_confirmed_by_check_and_active(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.delay(3)  # the target applies the grant, then answers after the 2 s timeout
    request_id = _approved(bot)
    session = bot.wait_session(request_id, SessionState.active, timeout=10)
    assert webhook.held() == {HELD}
    assert session.expires_at is not None
    [granted] = [d for e, d in _events(bot, request_id) if e == "granted"]
    assert "webhook" in granted["confirmed_by_check_after"]  # the error the grant call got
    bot.slack.wait_for(  # the requester is told the truth: they have the access
        "chat.postMessage", lambda a: a.get("channel") == BOB and shows(a.get("blocks"), "You have")
    )


def test_grant_applied_but_answered_5xx_is_confirmed_by_check_and_active(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.respond_with(502, applied=True)
    request_id = _approved(sqlite_bot)
    sqlite_bot.wait_session(request_id, SessionState.active)
    assert webhook.held() == {HELD}


def test_grant_refused_with_5xx_and_absent_on_check_is_failed(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.respond_with(503)
    request_id = _approved(sqlite_bot)
    session = sqlite_bot.wait_session(request_id, SessionState.grant_failed)
    assert "503" in (session.last_error or "")
    assert webhook.held() == set()
    assert [r.body["action"] for r in webhook.requests] == ["grant", "check"]


def test_unknown_grant_outcome_is_checked_again_and_revoked_when_found(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.delay(3)  # grant: applied, answer lost
    webhook.respond_with(200)
    webhook.respond_with(500)  # check: fails too
    request_id = _approved(sqlite_bot)
    session = sqlite_bot.wait_session(request_id, SessionState.grant_unknown, timeout=10)
    assert session.next_attempt_at is not None
    assert session.next_attempt_at - clock.now() <= timedelta(seconds=15)
    card = sqlite_bot.slack.wait_for(
        "chat.update", lambda a: shows(a.get("blocks"), "Grant outcome unknown")
    )
    assert not offers(card[-1].get("blocks"), "retry_grant")
    assert webhook.held() == {HELD}  # standing, for now

    clock.travel(timedelta(seconds=16))
    assert sqlite_bot.sweep().unconfirmed == [session.id]
    ended = sqlite_bot.wait_session(request_id, SessionState.ended)
    assert ended.end_reason == EndReason.unconfirmed
    assert webhook.held() == set()
    events = [e for e, _ in _events(sqlite_bot, request_id)]
    assert events[events.index("grant_unknown") :] == [
        "grant_unknown",
        "unconfirmed_found",
        "revoked",
        "closeout_prompted",
    ]


def test_unknown_grant_outcome_found_absent_becomes_failed(
    sqlite_bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.respond_with(500)  # grant: not applied, 5xx
    webhook.respond_with(500)  # check: fails
    request_id = _approved(sqlite_bot)
    session = sqlite_bot.wait_session(request_id, SessionState.grant_unknown)
    clock.travel(timedelta(seconds=16))
    assert sqlite_bot.sweep().unconfirmed == [session.id]
    sqlite_bot.wait_session(request_id, SessionState.grant_failed)
    assert "grant_not_found" in [e for e, _ in _events(sqlite_bot, request_id)]


def test_access_held_for_a_failed_grant_is_drift_and_revoked_by_reconcile(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    webhook.respond_with(503)
    request_id = _approved(bot)
    session = bot.wait_session(request_id, SessionState.grant_failed)
    webhook.hold(*HELD)  # the grant landed late, after the check said it was absent

    report = reconcile(bot.ctx)

    assert [(f.kind, f.session_id, f.outcome) for f in report.findings] == [
        ("standing_access", session.id, "revoked")
    ]
    assert webhook.held() == set()
    assert "drift_revoked" in [e for e, _ in _events(bot, request_id)]


# --- a policy change that would strand open sessions -----------------------------------------


OTHER_SYSTEM_ONLY = """\
defaults:
  approver_channel: C0APPROVALS
  email_domains: [example.com]
systems:
  - id: billing
    name: Billing
    provider: webhook
    config: {{url: '{url}', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}
    approvers: [U0LEAD1]
    roles:
      - {{id: read, grant: billing-viewer}}
"""


@pytest.fixture
def stranded(
    sqlite_bot: BotHarness, webhook: WebhookReceiver, tmp_path: Path
) -> tuple[BotHarness, AccessSession, Path]:
    """An active orders-api session, and a new policy file that no longer has orders-api."""
    session = sqlite_bot.granted("orders-api read 30m PAY-1 look", BOB)
    new_policy = tmp_path / "new-policy.yml"
    new_policy.write_text(OTHER_SYSTEM_ONLY.format(url=webhook.url))
    return sqlite_bot, session, new_policy


def test_serve_refuses_a_policy_that_drops_a_system_with_open_sessions(
    stranded: tuple[BotHarness, AccessSession, Path], slack: FakeSlack, tmp_path: Path
) -> None:
    _, session, new_policy = stranded
    settings = make_settings(tmp_path, slack, new_policy)
    with pytest.raises(PolicyError) as refused:
        build_bot(settings)
    message = str(refused.value)
    assert session.id in message and "orders-api" in message
    assert f"prod-access revoke {session.id} --policy" in message


def _cli_env(tmp_path: Path, slack: FakeSlack, policy: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    return {
        **clean,
        "SLACK_API_URL": slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "POLICY_FILE": str(policy),
        "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def test_check_shows_the_stranded_sessions_as_a_problem(
    stranded: tuple[BotHarness, AccessSession, Path], slack: FakeSlack, tmp_path: Path
) -> None:
    _, session, new_policy = stranded
    env = {
        **_cli_env(tmp_path, slack, new_policy),
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    }
    result = run_cli_here(tmp_path, env, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [row for row in result.stdout.splitlines() if row.startswith("open sessions")]
    assert "PROBLEM" in line and session.id in line and "prod-access revoke" in line


def test_revoke_ends_a_stranded_session_with_the_old_policy_then_serve_starts(
    stranded: tuple[BotHarness, AccessSession, Path],
    slack: FakeSlack,
    webhook: WebhookReceiver,
    tmp_path: Path,
) -> None:
    bot, session, new_policy = stranded
    env = _cli_env(tmp_path, slack, new_policy)
    refused = run_cli_here(tmp_path, env, "revoke", session.id)
    assert refused.returncode == 2
    assert "--policy" in refused.stderr and "orders-api" in refused.stderr
    assert bot.session_for(session.request_id).state == SessionState.active

    old_policy = write_policy(tmp_path / "old-policy.yml", webhook.url)
    done = run_cli_here(tmp_path, env, "revoke", session.id, "--policy", str(old_policy))
    assert done.returncode == 0, done.stderr
    assert bot.session_for(session.request_id).state == SessionState.ended
    assert webhook.held() == set()
    started = build_bot(make_settings(tmp_path, slack, new_policy))  # now it starts
    started.later.shutdown()
