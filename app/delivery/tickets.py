"""The outbox's deliver, with comments on tickets: a `ticket_comment` notice goes to the ticket's
tracker (app/operations/ticket_comments.py), every other kind to the deliver it wraps (Slack's).
A tracker failure raised here is what the outbox keeps and retries, like a Slack failure; those
notices wait in a line of their own (notices.TRACKER_KINDS), never in front of Slack's."""

from __future__ import annotations

from app.context import AppContext
from app.delivery.notices import TRACKER_KINDS, NoticeArg, NoticeKind
from app.delivery.outbox import Deliver
from app.models import AccessSession
from app.operations.ticket_comments import post_ticket_comment
from app.trackers.comments import TicketEvent


def with_ticket_comments(ctx: AppContext, deliver: Deliver) -> Deliver:
    """`deliver`, with `ticket_comment` notices sent to the tracker instead."""

    def to_tracker_or_slack(kind: NoticeKind, args: tuple[NoticeArg, ...]) -> None:
        if kind not in TRACKER_KINDS:
            deliver(kind, args)
            return
        session, event = args
        assert isinstance(session, AccessSession) and isinstance(event, str)
        post_ticket_comment(ctx, session.id, TicketEvent(event))

    return to_tracker_or_slack
