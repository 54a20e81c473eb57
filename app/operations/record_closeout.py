"""The closeout note: what changed while the access was open, written by the requester after it
ended; stored, audited, and posted to the card's thread by the notifier. Reminders until then.
"""

from __future__ import annotations

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import AccessSession, CloseoutState, SessionState
from app.operations.common import load_locked
from app.operations.errors import ConflictError, NotAllowed
from app.operations.ticket_comments import comment_on_ticket
from app.trackers.comments import TicketEvent

NOTE_MAX = 2900  # fits one Slack section block with its label


def check_closeout_writer(session: AccessSession, user_id: str) -> None:
    if user_id != session.requester_id:
        raise NotAllowed("Only the person who had the access can write its closeout note.")
    if session.state != SessionState.ended:
        raise ConflictError(f"Session {session.id} has not ended yet.")
    if session.closeout_state == CloseoutState.closed_out:
        raise ConflictError(f"The closeout note for {session.id} is already written.")


def record_closeout(
    ctx: AppContext, session_id: str, user_id: str, changes: str, followups: str
) -> AccessSession:
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        check_closeout_writer(session, user_id)
        session.closeout_state = CloseoutState.closed_out
        session.closeout_changes = changes.strip()[:NOTE_MAX]
        session.closeout_followups = followups.strip()[:NOTE_MAX] or None
        session.closeout_at = clock.now()
        session.next_reminder_at = None
        audit.record(
            db,
            "closeout",
            user_id,
            session=session,
            changes=session.closeout_changes,
            followups=session.closeout_followups,
        )
    ctx.notify.closeout_recorded(session)
    comment_on_ticket(ctx, session, TicketEvent.closeout)
    return session


def remind_closeout(ctx: AppContext, session_id: str) -> AccessSession | None:
    """Count one reminder and schedule the next (policy closeout_reminders, from the end time).
    The last reminder also tells the approvers that the note is missing (escalation)."""
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        due = session.next_reminder_at
        if session.closeout_state != CloseoutState.prompted or due is None or due > clock.now():
            return None
        reminders = ctx.policy.defaults.closeout_reminders
        session.reminders_sent += 1
        ended = session.ended_at or clock.now()
        session.next_reminder_at = (
            ended + reminders[session.reminders_sent]
            if session.reminders_sent < len(reminders)
            else None
        )
        audit.record(
            db,
            "closeout_reminder",
            audit.SYSTEM_ACTOR,
            session=session,
            reminder=session.reminders_sent,
        )
        last = session.reminders_sent >= len(reminders)
        if last:
            audit.record(db, "closeout_escalated", audit.SYSTEM_ACTOR, session=session)
    ctx.notify.closeout_reminder(session)
    if last:
        ctx.notify.closeout_missing(session)
    return session
