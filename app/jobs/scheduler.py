"""Start the timers inside the serving process (APScheduler's BackgroundScheduler).

With SQLite, run one process. Jobs never overlap themselves (max_instances=1) and a missed run
is simply folded into the next one (coalesce), because each run sweeps everything that is due.

The expiry sweep runs every EXPIRY_INTERVAL_SECONDS and also on time: after each run it looks
up when the next session falls due and, when that is before the next tick, runs then. A
thousand sessions ending at 09:00:00 start being revoked at 09:00:00, not up to a tick later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from app import clock
from app.context import AppContext
from app.jobs.audit_sinks import stream_audit_events
from app.jobs.expire import expire_due_sessions, next_due_at
from app.jobs.incidents import end_sessions_of_resolved_incidents
from app.jobs.notices import resend_pending_notices
from app.jobs.reconcile import reconcile
from app.jobs.reminders import send_closeout_reminders
from app.jobs.requests import escalate_unreviewed_breakglass, lapse_stale_requests
from app.jobs.step_up import EVERY_SECONDS as STEP_UP_EVERY
from app.jobs.step_up import forget_old_step_up_logins
from app.jobs.waiting_requests import remind_and_escalate_waiting_requests


def start_scheduler(
    ctx: AppContext, also: Sequence[tuple[Callable[[AppContext], object], float]] = ()
) -> BackgroundScheduler:
    """Start the timers; `also` adds the serving layer's own (job, every so many seconds)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    settings = ctx.settings
    every = {
        EXPIRY_JOB: (sweep_on_time, [ctx, scheduler], settings.expiry_interval_seconds),
        **{
            job.__name__: (job, [ctx], seconds)
            for job, seconds in (
                (send_closeout_reminders, settings.reminder_interval_seconds),
                (lapse_stale_requests, settings.reminder_interval_seconds),
                (escalate_unreviewed_breakglass, settings.reminder_interval_seconds),
                (remind_and_escalate_waiting_requests, settings.reminder_interval_seconds),
                (reconcile, settings.reconcile_interval_seconds),
                (resend_pending_notices, settings.notice_resend_interval_seconds),
                (stream_audit_events, settings.audit_sink_interval_seconds),
                (forget_old_step_up_logins, STEP_UP_EVERY),
                (end_sessions_of_resolved_incidents, settings.tracker_poll_seconds),
                *also,
            )
        },
    }
    for job_id, (job, args, seconds) in every.items():
        scheduler.add_job(
            job,
            "interval",
            args=args,
            seconds=seconds,
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            # the sweep runs at once, which also schedules it for the next session due
            **({"next_run_time": datetime.now(UTC)} if job_id == EXPIRY_JOB else {}),
        )
    scheduler.start()
    return scheduler


EXPIRY_JOB = expire_due_sessions.__name__
#: What falls due within this much of now is swept at once rather than scheduled.
SOON = timedelta(milliseconds=5)


def sweep_on_time(ctx: AppContext, scheduler: BackgroundScheduler) -> None:
    """The expiry job: sweep, and sweep again while something fell due meanwhile; then, when
    the next session falls due before the job's next tick, move that tick to it. Nothing new
    starts once the scheduler is paused or stopped (a graceful stop), and what is due but not
    ours to take (leased, or being claimed by another replica) is left to the next tick."""
    while True:
        swept = expire_due_sessions(ctx)
        due = next_due_at(ctx)
        if due is None or scheduler.state != STATE_RUNNING:
            return
        wait = due - clock.now()
        if wait > SOON:
            break
        if not (swept.expired or swept.retried or swept.resumed):
            return
    at = datetime.now(UTC) + wait  # the scheduler keeps real time; `clock` may be a test's
    job = scheduler.get_job(EXPIRY_JOB)
    if job is not None and job.next_run_time is not None and at < job.next_run_time:
        scheduler.modify_job(EXPIRY_JOB, next_run_time=at)
