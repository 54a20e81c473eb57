"""The timer's job that forgets step-up links (app/operations/step_up.py) once they can no
longer be used: a link lives LINK_TTL, and its row is deleted KEEP_EXPIRED after that. What a
link did is in the audit trail (step_up_started, the approval, step_up_failed), not in the row;
a link opened after its row is gone is refused as unknown, as any made-up link is."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import CursorResult, delete

from app import clock
from app.context import AppContext
from app.db import transaction
from app.models_features import StepUpLogin

KEEP_EXPIRED = timedelta(hours=1)
EVERY_SECONDS = 600


def forget_old_step_up_logins(ctx: AppContext) -> int:
    """Delete the links that expired more than KEEP_EXPIRED ago; how many went."""
    cutoff = clock.now() - KEEP_EXPIRED
    with transaction(ctx.db) as db:
        gone = db.execute(delete(StepUpLogin).where(StepUpLogin.expires_at < cutoff))
        assert isinstance(gone, CursorResult)
        return gone.rowcount
