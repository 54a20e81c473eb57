"""The expiry timer is on time: a session is revoked when its window ends, not up to a tick
of EXPIRY_INTERVAL_SECONDS later, and never before it ends (real scheduler, real webhook)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.context import AppContext
from app.db import transaction
from app.jobs import scheduler as scheduler_module
from app.jobs.expire import next_due_at
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


def test_a_grant_after_the_sweep_looked_moves_its_next_run_to_the_sessions_end(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    """The sweep computed its next run (the tick, 120 s away: nothing was due); then a grant
    for 5 s commits. The grant wakes the timer: the job's next run moves to the session's end
    (less the claim lead), and the revoke comes on time, not at the tick."""
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"expiry_interval_seconds": 120})
    scheduler = start_scheduler(bot.ctx)
    try:
        job = scheduler.get_job(EXPIRY_JOB)
        assert job is not None
        deadline = time.monotonic() + 10
        while job.next_run_time is None or job.next_run_time < datetime.now(UTC) + timedelta(
            seconds=60
        ):  # the first sweep has run and found nothing due
            assert time.monotonic() < deadline
            time.sleep(0.05)
            job = scheduler.get_job(EXPIRY_JOB)
            assert job is not None
        tick = job.next_run_time

        session = bot.granted("orders-api write 5s PAY-72 hotfix", BOB, LEAD1)
        assert session.expires_at is not None
        moved = scheduler.get_job(EXPIRY_JOB)
        assert moved is not None and moved.next_run_time is not None
        assert moved.next_run_time < tick  # woken: not left to the tick
        assert moved.next_run_time <= session.expires_at

        webhook.wait_for(action="revoke", timeout=60)  # generous: the tick is 120 s away
        revoked_at = datetime.now(UTC)
    finally:
        scheduler.shutdown(wait=True)
    assert revoked_at >= session.expires_at  # never early for a session alone
    assert bot.wait_session(session.request_id, SessionState.ended).end_reason == "expired"


def test_a_grant_committed_while_the_sweep_runs_is_looked_at_before_it_ends(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grant that commits while the sweep runs, after it read when the next session falls
    due: the sweep looks again before it ends and schedules its next run for that session."""
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"expiry_interval_seconds": 120})
    session = bot.granted("orders-api write 1h PAY-73 hotfix", BOB, LEAD1)
    ends = clock.now() + timedelta(seconds=30)
    looks: list[datetime | None] = []

    def look_then_grant(ctx: AppContext) -> datetime | None:
        due = next_due_at(ctx)
        looks.append(due)
        if len(looks) == 1:  # the sweep has read when to run next; now a grant commits
            with transaction(ctx.db) as db:
                db.get_one(AccessSession, session.id).expires_at = ends
            assert ctx.expiry_set is not None
            ctx.expiry_set(ends)
        return due

    monkeypatch.setattr(scheduler_module, "next_due_at", look_then_grant)
    scheduler = start_scheduler(bot.ctx)
    try:
        deadline = time.monotonic() + 10
        while len(looks) < 2:  # it looked again
            assert time.monotonic() < deadline
            time.sleep(0.05)
        job = scheduler.get_job(EXPIRY_JOB)
        assert job is not None and job.next_run_time is not None
        while job.next_run_time > ends:  # the run ends by scheduling the session's end
            assert time.monotonic() < deadline
            time.sleep(0.05)
            job = scheduler.get_job(EXPIRY_JOB)
            assert job is not None and job.next_run_time is not None
    finally:
        scheduler.shutdown(wait=True)
    assert job.next_run_time >= ends - timedelta(seconds=bot.ctx.settings.expiry_lead_seconds + 1)
