"""Comments on a session's ticket: posted once per event (granted, ended, closeout), through the
outbox (app/delivery/tickets.py), so a tracker that is down delays a comment and loses none.

Rules:
- only for a request whose ticket a tracker rule handled (`ticket_tracker` set) and whose rule
  comments (`comment`, default: where the tracker takes comments); the rule is found again by
  the policy in force now;
- a `ticket_comments` row per (session, event) records the attempts; a posted one is never
  posted again, however often its notice is delivered (a notice is delivered at least once);
- a failure is audited (`ticket_comment_failed`) and shown in the card's thread once, on the
  first failed attempt, not on every retry; a retryable failure is raised again, so the outbox
  keeps the notice and retries it with backoff; a final one (the ticket is gone, the token may
  not comment) is not retried;
- a posted comment is audited `ticket_commented`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit, clock, metrics
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, AccessSession
from app.models_features import TicketComment
from app.operations.common import read_row
from app.operations.queries import with_approvals
from app.text import short
from app.trackers.base import TrackerError, TrackerUse
from app.trackers.comments import TicketEvent, comment_text


def comments_on(ctx: AppContext, session: AccessSession) -> TrackerUse | None:
    """The tracker rule that comments on this session's ticket, or None."""
    request = session.request
    system = ctx.policy.system(session.system_id)
    if ctx.trackers is None or system is None or request.ticket_tracker is None:
        return None
    use = ctx.trackers.for_ticket(system, request.ticket)
    return use if use is not None and use.comments else None


def comment_on_ticket(ctx: AppContext, session: AccessSession, event: TicketEvent) -> None:
    """After the step's commit: hand the event's comment to the outbox, if the ticket's
    tracker comments (no notice at all otherwise)."""
    if comments_on(ctx, session) is not None:
        ctx.notify.ticket_comment(session, event)


def post_ticket_comment(ctx: AppContext, session_id: str, event: TicketEvent) -> None:
    """Post the event's comment on the session's ticket once (see the module docstring);
    raises TrackerError when it failed and is worth trying again."""
    session = read_row(ctx, AccessSession, session_id)
    use = comments_on(ctx, session)
    if use is None:
        return
    row_id = _row(ctx, session_id, event)
    if row_id is None:
        return  # posted already
    system = ctx.policy.system(session.system_id)
    approvers = [ctx.directory.email_for(a) or a for a in _approvers(ctx, session)]
    text = comment_text(event, session, system.name if system else session.system_id, approvers)
    try:
        use.tracker.comment(session.request.ticket, text)
    except TrackerError as exc:
        metrics.TRACKER_FAILURES.labels(tracker=use.rule.type, call="comment").inc()
        if _failed(ctx, row_id, session, event, use, exc):
            outcome = "retrying" if exc.retryable else "given_up"
            ctx.notify.ticket_comment_failed(session, event.value, short(exc), outcome)
        if exc.retryable:
            raise
        return
    with transaction(ctx.db) as db:
        row = db.get(TicketComment, row_id, with_for_update=True)
        assert row is not None
        row.posted_at = clock.now()
        audit.record(
            db,
            "ticket_commented",
            audit.SYSTEM_ACTOR,
            session=session,
            on=event.value,
            tracker=use.rule.type,
            attempts=row.attempts + 1,
        )


def _approvers(ctx: AppContext, session: AccessSession) -> list[str]:
    request = read_row(ctx, AccessRequest, session.request_id, with_approvals)
    return request.approved_by or ([request.decided_by] if request.decided_by else [])


def _row(ctx: AppContext, session_id: str, event: TicketEvent) -> int | None:
    """The comment's row (made on first use); None when it is posted already."""
    for _ in range(2):  # a second try finds the row another replica made at the same moment
        try:
            with transaction(ctx.db) as db:
                row = db.scalars(
                    select(TicketComment).where(
                        TicketComment.session_id == session_id,
                        TicketComment.event == event.value,
                    )
                ).first()
                if row is None:
                    row = TicketComment(session_id=session_id, event=event.value, attempts=0)
                    db.add(row)
                    db.flush()
                return None if row.posted_at is not None else row.id
        except IntegrityError:
            continue
    raise TrackerError("could not record the ticket comment")


def _failed(
    ctx: AppContext,
    row_id: int,
    session: AccessSession,
    event: TicketEvent,
    use: TrackerUse,
    exc: TrackerError,
) -> bool:
    """Count the failed attempt; True the first time (then it is audited and to be shown)."""
    with transaction(ctx.db) as db:
        row = db.get(TicketComment, row_id, with_for_update=True)
        assert row is not None
        row.attempts += 1
        row.last_error = short(exc)
        if row.failure_shown_at is not None:
            return False
        row.failure_shown_at = clock.now()
        audit.record(
            db,
            "ticket_comment_failed",
            audit.SYSTEM_ACTOR,
            session=session,
            on=event.value,
            tracker=use.rule.type,
            error=short(exc),
            retrying=exc.retryable,
        )
        return True
