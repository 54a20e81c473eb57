"""The access review on a seeded history, checked against a hand count; and its Slack posting."""

from __future__ import annotations

import csv
import functools
import io
import json
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from app import clock
from app.config import SettingsError, load_settings
from app.jobs.expire import expire_due_sessions
from app.jobs.review import post_review, schedule_review
from app.models import EndReason
from app.operations.decide_request import approve_request, deny_request
from app.operations.end_session import end_session
from app.operations.grant_session import grant_session
from app.operations.record_closeout import record_closeout
from app.operations.request_access import RequestForm, create_request
from app.review import build_review, render
from app.slack.notifier import publish_review
from tests.conftest import ALICE, BOB, LEAD1, LEAD2, MALLORY, BotHarness
from tests.fakes.webhook_receiver import WebhookReceiver


def _granted(bot: BotHarness, who: str, role: str, duration: str, ticket: str, approver: str):
    request = create_request(bot.ctx, who, RequestForm("orders-api", role, duration, ticket, "x"))
    session = approve_request(bot.ctx, request.id, approver).session
    assert session is not None
    return grant_session(bot.ctx, session.id)


def _seed_history(bot: BotHarness, webhook: WebhookReceiver) -> None:
    """The history the hand count below is made from (times relative to the test's start)."""
    ctx = bot.ctx
    # 40 days ago, outside a 30-day review: MALLORY's read access, approved by LEAD2.
    clock.travel(timedelta(days=-40))
    old = _granted(bot, MALLORY, "read", "15m", "PAY-5", LEAD2)
    end_session(ctx, old.id, EndReason.released, MALLORY)
    clock.travel(timedelta(days=40))
    # BOB: write for 1 h, expires, writes a closeout note.
    one = _granted(bot, BOB, "write", "1h", "PAY-1", LEAD1)
    clock.travel(timedelta(hours=1))
    expire_due_sessions(ctx)
    record_closeout(ctx, one.id, BOB, "restarted the worker", "")
    # BOB: read for 10 min, ends it early, never writes a closeout note.
    two = _granted(bot, BOB, "read", "15m", "PAY-2", LEAD2)
    clock.travel(timedelta(minutes=10))
    end_session(ctx, two.id, EndReason.released, BOB)
    # ALICE: asks for write 2 h, denied by LEAD1.
    denied = create_request(ctx, ALICE, RequestForm("orders-api", "write", "2h", "PAY-3", "x"))
    deny_request(ctx, denied.id, LEAD1)
    # ALICE: write 30 min; the first revoke fails, the retry a minute later succeeds.
    three = _granted(bot, ALICE, "write", "30m", "PAY-4", LEAD1)
    clock.travel(timedelta(minutes=30))
    webhook.respond_with(500)
    expire_due_sessions(ctx)
    clock.travel(timedelta(minutes=1))
    expire_due_sessions(ctx)
    record_closeout(ctx, three.id, ALICE, "ran the migration", "")


def test_review_numbers_match_a_hand_count(bot: BotHarness, webhook: WebhookReceiver) -> None:
    _seed_history(bot, webhook)
    with bot.ctx.db() as db:
        review = build_review(db, bot.ctx.policy, clock.now() - timedelta(days=30), clock.now())

    lines = {(x.person, x.system): x for x in review.lines}
    assert set(lines) == {(ALICE, "orders-api"), (BOB, "orders-api")}  # MALLORY: 40 days ago
    alice, bob = lines[(ALICE, "orders-api")], lines[(BOB, "orders-api")]
    assert (bob.sessions, bob.write, bob.read) == (2, 1, 1)
    assert bob.hours == pytest.approx(1 + 10 / 60, abs=0.01)
    assert (bob.denials, bob.no_closeout, bob.revoke_problems) == (0, 1, 0)
    assert (alice.sessions, alice.write, alice.read) == (1, 1, 0)
    assert alice.hours == pytest.approx(31 / 60, abs=0.01)
    assert (alice.denials, alice.no_closeout, alice.revoke_problems) == (1, 0, 1)
    assert review.approvals == {LEAD1: 2, LEAD2: 1}
    assert review.self_approvals == []
    assert len(review.attention) == 2
    assert "PAY-2" in review.attention[0] and "without a closeout note" in review.attention[0]
    assert "PAY-4" in review.attention[1] and "revoke_failed x1" in review.attention[1]
    totals = review.totals
    assert (totals.sessions, totals.write, totals.read, totals.denials) == (3, 2, 1, 1)

    markdown = render(review, "md")
    assert "| U0BOB | orders-api | 2 | 1.17 | 1 | 1 | 0 | 0 | 0 | 0 | 1 | 0 |" in markdown
    assert "| U0LEAD1 | 2 |" in markdown and "## Needs attention" in markdown
    rows = list(csv.DictReader(io.StringIO(render(review, "csv"))))
    access = [r for r in rows if r["section"] == "access"]
    assert [(r["person"], r["sessions"], r["denials"]) for r in access] == [
        (ALICE, "1", "1"),
        (BOB, "2", "0"),
    ]
    assert [r["note"] for r in rows if r["section"] == "attention"] == review.attention
    page = render(review, "html")
    assert page.startswith("<!doctype html>") and "<td>U0ALICE</td>" in page


def test_review_is_posted_to_slack_as_summary_and_file(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    _seed_history(bot, webhook)
    bot.ctx.settings = bot.ctx.settings.model_copy(update={"review_period": "30d"})
    review = post_review(bot.ctx, functools.partial(publish_review, bot.bot.client, "C0REVIEW"))
    done = bot.slack.wait_for("files.completeUploadExternal")[0]
    assert done["channel_id"] == "C0REVIEW"
    assert done["initial_comment"].startswith(":clipboard: Access review")
    assert "3 sessions (2 write, 1 read)" in done["initial_comment"]
    files = done["files"] if isinstance(done["files"], list) else json.loads(done["files"])
    uploaded = bot.slack.uploads[files[0]["id"]].decode()
    assert uploaded.startswith("# Access review") and "U0BOB" in uploaded
    assert review.totals.sessions == 3


def test_review_job_is_scheduled_only_when_schedule_and_channel_are_set(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    assert not schedule_review(scheduler, bot.ctx, print)
    bot.ctx.settings = bot.ctx.settings.model_copy(
        update={"review_schedule": "0 9 1 * *", "review_channel": "C0REVIEW"}
    )
    assert schedule_review(scheduler, bot.ctx, print)
    job = scheduler.get_job("post_review")
    assert job is not None and "day='1'" in str(job.trigger) and "hour='9'" in str(job.trigger)
    monkeypatch.setenv("REVIEW_SCHEDULE", "every monday")
    with pytest.raises(SettingsError, match=r"^REVIEW_SCHEDULE is invalid: not a cron"):
        load_settings(_env_file=None)


def test_review_command_writes_the_report_file(
    bot: BotHarness, webhook: WebhookReceiver, tmp_path
) -> None:
    import os

    from tests.conftest import run_cli_here

    _seed_history(bot, webhook)
    env = {
        **os.environ,
        "DATABASE_URL": bot.ctx.settings.database_url,
        "POLICY_FILE": bot.ctx.settings.policy_file,
    }
    out = tmp_path / "review.html"
    # the seeded history lies up to 2 h in the (test clock's) future: end the period later
    result = run_cli_here(
        tmp_path, env, "review", "--since", "30d", "--until", "2099-01-01", "--format", "html",
        "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 sessions (2 write, 1 read)" in result.stderr
    assert "<td>U0BOB</td>" in out.read_text()
