"""The expiry timer is on time: a session is revoked when its window ends, not up to a tick
of EXPIRY_INTERVAL_SECONDS later, and never before it ends (real scheduler, real webhook)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from app import clock
from app.db import transaction
from app.jobs.scheduler import EXPIRY_JOB, start_scheduler
from app.models import AccessSession, SessionState
from tests.conftest import BOB, LEAD1, BotHarness
from tests.fakes.webhook_receiver import WebhookReceiver


def test_a_session_is_revoked_when_it_ends_not_at_the_next_tick(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session = bot.granted("orders-api write 1h PAY-70 hotfix", BOB, LEAD1)
    ends = clock.now() + timedelta(seconds=2)
    with transaction(bot.ctx.db) as db:
        db.get_one(AccessSession, session.id).expires_at = ends
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"expiry_interval_seconds": 120})

    scheduler = start_scheduler(bot.ctx)
    try:
        job = scheduler.get_job(EXPIRY_JOB)
        assert job is not None and job.trigger.interval == timedelta(seconds=120)
        webhook.wait_for(action="revoke", timeout=15)  # the next tick is 120 s away
        revoked_at = datetime.now(UTC)
    finally:
        scheduler.shutdown(wait=True)

    assert revoked_at >= ends  # never early: the window is the requester's until it ends
    ended = bot.wait_session(session.request_id, SessionState.ended)
    assert ended.end_reason == "expired"
    # afterwards the job keeps its interval: nothing else is due
    assert [r.body["action"] for r in webhook.requests].count("revoke") == 1


def test_a_session_granted_after_a_sweep_is_still_revoked_by_the_next_tick(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"expiry_interval_seconds": 1})
    scheduler = start_scheduler(bot.ctx)
    try:
        time.sleep(0.3)  # the first sweep ran and found nothing due
        session = bot.granted("orders-api write 1h PAY-71 hotfix", BOB, LEAD1)
        with transaction(bot.ctx.db) as db:
            db.get_one(AccessSession, session.id).expires_at = clock.now()
        webhook.wait_for(action="revoke", timeout=5)
    finally:
        scheduler.shutdown(wait=True)
    assert bot.wait_session(session.request_id, SessionState.ended).end_reason == "expired"
