"""The timer's job that sends kept notices again (app/delivery/outbox.py)."""

from __future__ import annotations

from app.context import AppContext
from app.delivery.outbox import Outbox, Resent


def resend_pending_notices(ctx: AppContext) -> Resent:
    """Send the kept notices again; nothing to do without an outbox (no Slack)."""
    return ctx.notify.resend() if isinstance(ctx.notify, Outbox) else Resent()
