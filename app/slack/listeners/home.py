"""The Home tab: opening it refreshes it. A surface of its own (blocks/ builds it apart from
the command's answers), though its buttons are the card's and the DM's (card.py, session.py).

The refresh is a Web API call nobody is blocked on: it waits for a quiet moment.
"""

from __future__ import annotations

from slack_bolt import Ack, App

from app.context import AppContext
from app.slack.after_ack import AfterAck


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the app_home_opened event."""

    @app.event("app_home_opened")
    def on_home_opened(ack: Ack, event: dict) -> None:
        ack()
        if event.get("tab", "home") == "home":
            later.when_quiet(ctx.notify.home_opened, event["user"])
