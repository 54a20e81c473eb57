"""Start the timers inside the serving process (APScheduler's BackgroundScheduler).

With SQLite, run one process. Jobs never overlap themselves (max_instances=1) and a missed run
is simply folded into the next one (coalesce), because each run sweeps everything that is due.
"""

from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler

from app.context import AppContext
from app.jobs.expire import expire_due_sessions
from app.jobs.reconcile import reconcile
from app.jobs.reminders import send_closeout_reminders
from app.jobs.requests import escalate_unreviewed_breakglass, lapse_stale_requests
from app.slack.outbox import resend_pending_notices


def start_scheduler(ctx: AppContext) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    settings = ctx.settings
    every = {
        expire_due_sessions: settings.expiry_interval_seconds,
        send_closeout_reminders: settings.reminder_interval_seconds,
        lapse_stale_requests: settings.reminder_interval_seconds,
        escalate_unreviewed_breakglass: settings.reminder_interval_seconds,
        reconcile: settings.reconcile_interval_seconds,
        resend_pending_notices: settings.notice_resend_interval_seconds,
    }
    for job, seconds in every.items():
        scheduler.add_job(
            job,
            "interval",
            args=[ctx],
            seconds=seconds,
            id=job.__name__,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    scheduler.start()
    return scheduler
