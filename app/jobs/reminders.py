"""Closeout reminders: DM the person again while their closeout note is missing (policy
`closeout_reminders`, counted from the end of the access).

Safe in every replica at once: the due list is read without locks, but `remind_closeout` locks
the session and checks again that the reminder is due before it counts and sends one, so a
replica that comes second finds it already sent (tests/test_replicas.py). No claim is needed.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import select

from app import clock
from app.context import AppContext
from app.db import reading
from app.jobs.safely import safely
from app.models import AccessSession, CloseoutState
from app.operations.record_closeout import remind_closeout


def send_closeout_reminders(ctx: AppContext) -> list[str]:
    with reading(ctx.db) as db:
        due = list(
            db.scalars(
                select(AccessSession.id).where(
                    AccessSession.closeout_state == CloseoutState.prompted,
                    AccessSession.next_reminder_at <= clock.now(),
                )
            )
        )
    return [
        session_id
        for session_id in due
        if safely(
            "closeout_reminder", partial(remind_closeout, ctx, session_id), session_id=session_id
        )
    ]
