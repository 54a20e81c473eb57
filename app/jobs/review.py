"""The scheduled access review: every REVIEW_SCHEDULE (cron, UTC), the review of the last
REVIEW_PERIOD is handed to `publish` (Slack: a summary and the Markdown file)."""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from app import clock
from app.context import AppContext
from app.db import reading
from app.policy_values import parse_duration
from app.review import Review, build_review


def review_of_last_period(ctx: AppContext) -> Review:
    until = clock.now()
    since = until - parse_duration(ctx.settings.review_period)
    with reading(ctx.db) as db:
        return build_review(db, ctx.policy, since, until)


def post_review(ctx: AppContext, publish: Callable[[Review], None]) -> Review:
    review = review_of_last_period(ctx)
    publish(review)
    return review


def schedule_review(
    scheduler: BaseScheduler, ctx: AppContext, publish: Callable[[Review], None]
) -> bool:
    """Add the cron job when REVIEW_SCHEDULE and REVIEW_CHANNEL are both set."""
    settings = ctx.settings
    if not (settings.review_schedule and settings.review_channel):
        return False
    scheduler.add_job(
        post_review,
        CronTrigger.from_crontab(settings.review_schedule, timezone="UTC"),
        args=[ctx, publish],
        id="post_review",
        max_instances=1,
        coalesce=True,
    )
    return True
