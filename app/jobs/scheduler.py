"""Start the timers inside the serving process (APScheduler's BackgroundScheduler).

With SQLite, run one process. Jobs never overlap themselves (max_instances=1) and a missed run
is simply folded into the next one (coalesce), because each run sweeps everything that is due.

The expiry sweep runs every EXPIRY_INTERVAL_SECONDS and also on time: after each run it looks
up when the next session falls due and, when that is before the next tick, runs then
(EXPIRY_LEAD_SECONDS ahead: the sweep claims what ends within that lead and calls the provider
at the end). A thousand sessions ending at 09:00:00 are revoked at 09:00:00, not up to a tick
later. A grant that commits after the sweep last looked wakes it too (`ExpiryTimer.wake`, the
context's `expiry_set` hook): a session granted for less than a tick is not revoked late.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from app import clock
from app.context import AppContext
from app.jobs.audit_sinks import stream_audit_events
from app.jobs.expire import expire_due_sessions, lead_of, next_due_at
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
    timer = ExpiryTimer(ctx, scheduler)
    every = {
        EXPIRY_JOB: (timer.sweep, [], settings.expiry_interval_seconds),
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
    ctx.expiry_set = timer.wake
    return scheduler


EXPIRY_JOB = expire_due_sessions.__name__
#: What falls due within this much of now is swept at once rather than scheduled.
SOON = timedelta(milliseconds=5)


class ExpiryTimer:
    """The expiry job (`sweep`) and the hook that moves it earlier (`wake`)."""

    def __init__(self, ctx: AppContext, scheduler: BackgroundScheduler) -> None:
        self.ctx = ctx
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._running = False
        self._woken = False  # a wake came while the sweep ran: it looks again before it ends

    def sweep(self) -> None:
        """Sweep, and sweep again while something fell due meanwhile; then, when the next
        session falls due before the job's next tick, move that tick to it. Nothing new starts
        once the scheduler is paused or stopped (a graceful stop), and what is due but not ours
        to take (leased, or being claimed by another replica) is left to the next tick."""
        with self._lock:
            self._running = True
        try:
            while not self._sweep_once():
                pass
        finally:
            with self._lock:
                self._running = False

    def _sweep_once(self) -> bool:
        """One sweep and the next run's time; False when it should sweep again at once."""
        with self._lock:
            self._woken = False
        swept = expire_due_sessions(self.ctx)
        due = next_due_at(self.ctx)
        if self.scheduler.state != STATE_RUNNING:
            return True
        if due is not None:
            wait = due - lead_of(self.ctx) - clock.now()
            if wait > SOON:
                self._move_to(datetime.now(UTC) + wait)  # the scheduler keeps real time
            elif swept.expired or swept.retried or swept.resumed:
                return False  # due now, and it took something: again
            # else due now but not ours to take (leased, another replica's): the next tick
        with self._lock:
            if self._woken:  # a grant committed after `next_due_at` read: look again
                return False
            self._running = False
        return True

    def wake(self, expires_at: datetime) -> None:
        """A session now ends at `expires_at` (a grant committed): run the sweep in time for
        it if its next run is later. While the sweep runs, it looks again before it ends."""
        with self._lock:
            if self._running:
                self._woken = True
                return
        if self.scheduler.state == STATE_RUNNING:
            wait = expires_at - lead_of(self.ctx) - clock.now()
            self._move_to(datetime.now(UTC) + max(wait, timedelta(0)))

    def _move_to(self, at: datetime) -> None:
        """Make the expiry job's next run `at`, if that is sooner than it is now."""
        job = self.scheduler.get_job(EXPIRY_JOB)
        if job is not None and job.next_run_time is not None and at < job.next_run_time:
            self.scheduler.modify_job(EXPIRY_JOB, next_run_time=at)
