"""Assemble the running bot from settings: policy and providers (validated now, so mistakes stop
start-up), database (migrated), Slack client, notifier (with its outbox) and directory, and the
timers; and stop it gracefully."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from slack_sdk import WebClient

from app import clock
from app import db as database
from app.config import Settings
from app.context import AppContext, NoDirectory
from app.delivery.notices import QuietNotifier
from app.delivery.outbox import Outbox
from app.delivery.tickets import with_ticket_comments
from app.jobs.expire import announce_unposted_requests, resume_interrupted
from app.jobs.notices import resend_pending_notices
from app.jobs.review import schedule_review
from app.jobs.scheduler import start_scheduler
from app.oidc import oidc_from_settings
from app.oncall import pagerduty_from_settings
from app.operations.policy_change import describe_uncovered, uncovered_sessions
from app.policy import PolicyError, load_policy
from app.policy_reload import file_sha256, record_policy_at_start
from app.policy_reload_requests import PolicyReloadPoll
from app.providers.base import build_providers
from app.slack.after_ack import AfterAck
from app.slack.app import build_bolt_app, make_client
from app.slack.delivery import deliver_to, describe
from app.slack.directory import SlackDirectory
from app.slack.notifier import SlackNotifier, publish_review
from app.slack.replays import FORGET_EVERY_SECONDS, forget_old_slack_requests
from app.trackers.base import build_trackers


def build_context(settings: Settings) -> AppContext:
    policy = load_policy(settings.policy_file)
    policy_sha256 = file_sha256(settings.policy_file)  # audit events name the policy by it
    providers = build_providers(policy)
    engine = database.make_engine(settings.database_url)
    sessions = database.make_sessionmaker(engine)
    ctx = AppContext(
        settings=settings,
        policy=policy,
        providers=providers,
        db=sessions,
        notify=QuietNotifier(),
        directory=NoDirectory(),
        oncall=pagerduty_from_settings(settings),
        oidc=oidc_from_settings(settings, now=lambda: clock.now().timestamp()),
        trackers=build_trackers(policy),
        policy_sha256=policy_sha256,
    )
    if settings.slack_bot_token:
        client = make_client(settings)
        slack = SlackNotifier(client, ctx)
        deliver = with_ticket_comments(ctx, deliver_to(slack))
        ctx.notify = Outbox(sessions, settings, deliver, describe)
        ctx.directory = SlackDirectory(client)
    return ctx


#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
SWITCH_INTERVAL_SECONDS = 0.0005


def hand_over_quickly() -> None:
    """In the serving process: a request passes between threads (the server's, the request's,
    the group-commit writer's) while other threads post cards and DMs. At Python's default, each
    hand-over could wait up to 5 ms behind a thread busy in Python: at a steady 50 requests/s,
    with the cards going out between them, p99 ack 100 ms; at 0.5 ms, 14.5 ms (the floors: 17-20
    ms), and no loss of throughput under a burst (bench/ack_latency.py)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


@dataclass
class Bot:
    ctx: AppContext
    client: WebClient
    bolt: App
    later: AfterAck
    scheduler: BackgroundScheduler | None = None

    def start_timers(self) -> None:
        """Send notices off the callers' threads from now on, finish what a crash left, revoke
        what expired while down, post cards never posted, then run the timers (notices kept by
        the last run are sent again at once)."""
        self.ctx.writes.start()
        if isinstance(self.ctx.notify, Outbox):
            self.ctx.notify.start(self.ctx.settings.work_threads)
        resume_interrupted(self.ctx)
        announce_unposted_requests(self.ctx)
        reloads = PolicyReloadPoll(self.ctx)
        self.scheduler = start_scheduler(
            self.ctx,
            also=[
                (forget_old_slack_requests, FORGET_EVERY_SECONDS),
                (reloads.poll_policy_reload, self.ctx.settings.policy_reload_poll_seconds),
            ],
        )
        self.scheduler.modify_job(resend_pending_notices.__name__, next_run_time=datetime.now(UTC))
        channel = self.ctx.settings.review_channel
        if channel:
            schedule_review(
                self.scheduler, self.ctx, functools.partial(publish_review, self.client, channel)
            )

    def stop_taking_work(self) -> None:
        """The first step of a graceful stop, quick enough for a signal handler: no timer starts
        another run (runs in progress go on)."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()

    def stop(self) -> None:
        """Graceful stop: no new timer runs; the runs in progress finish (a provider call in
        flight completes and its outcome is recorded); the work already acknowledged is done;
        queued notices are sent, or kept for the next start."""
        self.stop_taking_work()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        self.later.shutdown()
        self.ctx.writes.stop()
        if isinstance(self.ctx.notify, Outbox):
            self.ctx.notify.stop()


def build_bot(settings: Settings, *, socket: bool = False, migrate: bool = True) -> Bot:
    settings.require_slack(socket=socket)
    settings.register_secrets()
    if migrate:
        database.upgrade(settings.database_url)
    ctx = build_context(settings)
    with database.reading(ctx.db) as db:
        uncovered = uncovered_sessions(db, ctx.policy)
    if uncovered:
        raise PolicyError(describe_uncovered(settings.policy_file, uncovered))
    record_policy_at_start(ctx)
    client = make_client(settings)
    later = AfterAck(settings.work_threads)
    return Bot(ctx, client, build_bolt_app(ctx, client, later, socket=socket), later)
