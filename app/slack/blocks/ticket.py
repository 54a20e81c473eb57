"""The ticket on the approval card and in its thread: the ticket as a link, the tracker's title,
status and assignees (all of it text from elsewhere, escaped), the "⚠ ticket not verified"
line when the tracker could not be asked, and a comment that could not be posted."""

from __future__ import annotations

from app.models import AccessRequest, AccessSession
from app.slack.text import escape, truncate

#: What each comment is called in the thread (app/trackers/comments.py TicketEvent values).
COMMENT_NAMES = {"granted": "grant", "ended": "end", "closeout": "closeout note"}


def ticket_field(request: AccessRequest) -> str:
    """The card's Ticket field: the ticket, linked to the tracker when it was found there."""
    shown = escape(request.ticket)
    if request.ticket_url and request.ticket_verified:
        label = shown.replace("|", "¦") or "ticket"
        return f"*Ticket*\n<{request.ticket_url}|{label}>"
    return f"*Ticket*\n{shown}"


def ticket_lines(request: AccessRequest) -> list[str]:
    """The card's lines about the ticket: what the tracker says, or why it was not asked."""
    if request.ticket_verified is False:
        return ["⚠ ticket not verified: " + escape(request.ticket_note or "no answer")]
    if not request.ticket_verified:
        return []
    title = escape(truncate(request.ticket_title or "(no title)", 200))
    status = escape(request.ticket_status or "unknown")
    assignee = escape(request.ticket_assignee or "nobody")
    return [f":ticket: *{title}* · {status} · assigned to {assignee}"]


def comment_failed(session: AccessSession, event: str, error: str, outcome: str) -> str:
    """In the card's thread: a comment on the ticket did not go through (said once)."""
    what = COMMENT_NAMES.get(event, event)
    then = (
        "It is retried until it goes through; nothing is lost."
        if outcome == "retrying"
        else "It will not be retried."
    )
    return (
        f":warning: The {what} comment on {escape(session.request.ticket)} could not be "
        f"posted: {escape(error)}. {then}"
    )
