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


def start_scheduler(ctx: AppContext) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(
        expire_due_sessions,
        "interval",
        args=[ctx],
        seconds=ctx.settings.expiry_interval_seconds,
        id="expire_due_sessions",
        **common,
    )
    scheduler.add_job(
        send_closeout_reminders,
        "interval",
        args=[ctx],
        seconds=ctx.settings.reminder_interval_seconds,
        id="send_closeout_reminders",
        **common,
    )
    scheduler.add_job(
        reconcile,
        "interval",
        args=[ctx],
        seconds=ctx.settings.reconcile_interval_seconds,
        id="reconcile",
        **common,
    )
    scheduler.start()
    return scheduler
