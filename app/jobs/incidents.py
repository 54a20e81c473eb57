"""The timer behind incident-bound access: every TRACKER_POLL_SECONDS, end the sessions whose
incident is resolved (app/operations/incident_resolved.py). It runs in every replica; the
operation's row lock makes a session end once however many replicas find it."""

from __future__ import annotations

import structlog

from app.context import AppContext
from app.operations.incident_resolved import ResolvedRun
from app.operations.incident_resolved import (
    end_sessions_of_resolved_incidents as end_resolved,
)

log = structlog.get_logger(__name__)


def end_sessions_of_resolved_incidents(ctx: AppContext) -> ResolvedRun:
    """One poll; a line when it ended something or a tracker could not answer."""
    run = end_resolved(ctx)
    if run.ended or run.failed:
        log.info("incident_poll", looked_up=len(run.looked_up), ended=run.ended, failed=run.failed)
    return run
