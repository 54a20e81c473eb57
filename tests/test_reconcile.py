"""Reconciliation against the webhook target (which keeps state like a real one), with the bot's
database on SQLite and on PostgreSQL: access granted again behind the bot's back after a session
ended is found, revoked, audited and announced; overlapping sessions are left alone; missing
access of an active session is reported once; failures are listed for what they are."""

from __future__ import annotations

from datetime import timedelta

from app import audit, clock
from app.db import transaction
from app.jobs.reconcile import reconcile
from app.jobs.scheduler import start_scheduler
from app.models import AccessSession, SessionState
from tests.conftest import BOB, LEAD1, BotHarness
from tests.fakes.webhook_receiver import WebhookReceiver

IDENTITY, GRANT = "bob@example.com", "orders-admin"
DRIFT_EVENTS = ("drift_detected", "drift_revoked", "drift_revoke_failed", "access_missing")


def _granted(bot: BotHarness, text: str) -> AccessSession:
    return bot.granted(text, BOB, LEAD1)


def _expired(bot: BotHarness, text: str, minutes: int = 30) -> AccessSession:
    session = _granted(bot, text)
    clock.travel(timedelta(minutes=minutes, seconds=1))
    bot.sweep()
    return bot.wait_session(session.request_id, SessionState.ended)


def _events(bot: BotHarness, session: AccessSession) -> list[tuple[str, dict]]:
    with transaction(bot.ctx.db) as db:
        return [(e.event, e.detail) for e in audit.events(db, session.request_id)]


def _alerts(bot: BotHarness) -> list[dict]:
    return [c for c in bot.slack.calls_to("chat.postMessage") if "Access drift" in c["text"]]


def test_access_granted_again_after_expiry_is_found_revoked_audited_and_announced(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session = _expired(bot, "orders-api write 30m PAY-30 hotfix")
    assert webhook.held() == set()
    webhook.hold(IDENTITY, GRANT)  # an admin re-grants at the target, without the bot

    report = reconcile(bot.ctx)

    assert [(f.kind, f.session_id, f.outcome) for f in report.findings] == [
        ("standing_access", session.id, "revoked")
    ]
    assert webhook.held() == set()
    assert webhook.actions()[-1] == "revoke"
    drift = [(e, d) for e, d in _events(bot, session) if e in DRIFT_EVENTS]
    assert [e for e, _ in drift] == ["drift_detected", "drift_revoked"]
    assert drift[0][1]["identity"] == IDENTITY and drift[0][1]["grant"] == GRANT
    [alert] = _alerts(bot)
    card = bot.request(session.request_id)
    assert (alert["channel"], alert["thread_ts"]) == (card.card_channel, card.card_ts)
    assert alert["reply_broadcast"] is True  # in the thread and in the approver channel
    assert f"after {session.id} ended" in alert["text"] and "revoked it again" in alert["text"]

    again = reconcile(bot.ctx)
    assert again.clean and again.ended_checked == 1
    assert len(_alerts(bot)) == 1


def test_overlapping_sessions_holding_the_access_are_not_drift(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    first = _granted(bot, "orders-api write 30m PAY-31 part one")
    _granted(bot, "orders-api write 2h PAY-32 part two")
    clock.travel(timedelta(minutes=31))
    bot.sweep()
    bot.wait_session(first.request_id, SessionState.ended)  # revoke skipped: PAY-32 holds it

    report = reconcile(bot.ctx)

    assert report.clean and report.active_checked == 1
    assert webhook.held() == {(IDENTITY, GRANT)}
    assert not [e for e, _ in _events(bot, first) if e in DRIFT_EVENTS]
    assert _alerts(bot) == []


def test_active_session_whose_access_vanished_is_reported_once(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session = _granted(bot, "orders-api write 1h PAY-33 migrate")
    webhook.release(IDENTITY, GRANT)

    first, second = reconcile(bot.ctx), reconcile(bot.ctx)

    for report in (first, second):
        assert [(f.kind, f.outcome) for f in report.findings] == [("access_missing", "reported")]
    assert [e for e, _ in _events(bot, session)].count("access_missing") == 1
    [alert] = _alerts(bot)
    assert "the provider says the access is missing" in alert["text"]
    assert bot.session_for(session.request_id).state == SessionState.active


def test_drift_that_cannot_be_revoked_is_audited_and_announced_as_such(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session = _expired(bot, "orders-api write 30m PAY-34 hotfix")
    webhook.hold(IDENTITY, GRANT)
    webhook.respond_with(200)  # the check
    webhook.respond_with(500)  # the revoke

    [finding] = reconcile(bot.ctx).findings

    assert (finding.kind, finding.outcome) == ("standing_access", "revoke_failed")
    assert webhook.held() == {(IDENTITY, GRANT)}
    events = dict(_events(bot, session))
    assert events["drift_revoke_failed"]["error"].startswith("webhook answered HTTP 500")
    assert "revoking it again failed: webhook answered HTTP 500" in _alerts(bot)[0]["text"]


def test_provider_that_cannot_answer_is_listed_and_nothing_else(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session = _granted(bot, "orders-api write 1h PAY-35 migrate")
    webhook.respond_with(503)

    [finding] = reconcile(bot.ctx).findings

    assert (finding.kind, finding.session_id, finding.outcome) == (
        "check_failed",
        session.id,
        "not_checked",
    )
    assert finding.detail.startswith("webhook answered HTTP 503")
    assert not [e for e, _ in _events(bot, session) if e in DRIFT_EVENTS]
    assert _alerts(bot) == []


def test_sessions_that_ended_before_the_lookback_window_are_not_checked(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    _expired(bot, "orders-api write 30m PAY-36 hotfix")
    clock.travel(timedelta(days=bot.ctx.settings.reconcile_lookback_days, minutes=1))
    webhook.hold(IDENTITY, GRANT)

    report = reconcile(bot.ctx)

    assert report.clean and report.ended_checked == 0
    assert webhook.held() == {(IDENTITY, GRANT)}


def test_reconciliation_runs_on_the_configured_interval(bot: BotHarness) -> None:
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"reconcile_interval_seconds": 120})
    scheduler = start_scheduler(bot.ctx)
    try:
        job = scheduler.get_job("reconcile")
        assert job is not None and job.trigger.interval == timedelta(seconds=120)
        assert job.args[0] is bot.ctx
    finally:
        scheduler.shutdown(wait=False)
