"""Bolt listeners, one module per surface: parse what Slack sent, ack within milliseconds, call
an operation, answer.

- command.py: /prod-access (help, list, done, cancel, the quick form; no text opens the modal)
- home.py: the Home tab opened
- request.py: the request modal and the extend modal
- card.py: the approval card (approve, deny and its modal, retry a grant, break-glass review)
- session.py: the requester's DM (end now, cancel, the closeout modal)
- delegate.py: out of office on the Home tab (hand my approvals on, end a delegation)
- forms.py: reading a modal's values; replies.py: refusals to the clicker, modals after a check

No business rules here. Every click is re-checked by the operation it calls (the payload says
who clicked; it never decides what they may do). Refusals go back to the clicker alone.
Anything slow (Slack Web API calls, provider calls) goes to `later` after the ack.
"""

from __future__ import annotations

from slack_bolt import App

from app.context import AppContext
from app.slack.after_ack import AfterAck
from app.slack.listeners import card, command, delegate, home, request, session


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach every listener to the Bolt app."""
    for surface in (command, home, request, card, session, delegate):
        surface.register(app, ctx, later)
