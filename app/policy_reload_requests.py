"""How a reload reaches every replica: `prod-access policy reload` writes a request (the next
generation and the file's sha256) into the `policy_reload` row, and each serving process polls
that row every POLICY_RELOAD_POLL_SECONDS (a timer, `poll_policy_reload`).

Rules it relies on:
- Each replica reloads the file from its own disk (a ConfigMap, a checkout) and only when that
  file has the requested hash: a replica whose copy differs says so once, keeps the policy in
  force, and applies the request as soon as its file has that hash (or a newer request comes).
- A process starts at the generation it finds: requests made before it started are not run
  again (it loaded the file at start anyway).
- With POLICY_RELOAD_ON_CHANGE the same timer also reloads when the file's hash differs from
  the policy in force (a Kubernetes ConfigMap updated in place); a file refused once is not
  tried again until it changes.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import clock
from app.context import AppContext
from app.db import peeking, transaction
from app.models_features import PolicyReload
from app.policy_reload import (
    FILE_CHANGED,
    REQUESTED,
    ROW_ID,
    ReloadOutcome,
    file_sha256,
    reload_policy,
)

log = structlog.get_logger(__name__)
UNREADABLE = "unreadable"  # stands for the file's hash while it cannot be read
_READ = select(
    PolicyReload.generation, PolicyReload.requested_sha256, PolicyReload.requested_by
).where(PolicyReload.id == ROW_ID)


def request_reload(db: sessionmaker[Session], sha256: str, requested_by: str) -> int:
    """Ask every replica to reload a file with this hash; the request's generation."""
    with transaction(db) as session:
        generation = session.scalar(
            update(PolicyReload)
            .where(PolicyReload.id == ROW_ID)
            .values(
                generation=PolicyReload.generation + 1,
                requested_sha256=sha256,
                requested_by=requested_by[:64],
                requested_at=clock.now(),
            )
            .returning(PolicyReload.generation)
        )
    assert generation is not None  # migration 0009 inserts the row
    return generation


class PolicyReloadPoll:
    """One serving process's view of the reload requests (its state lives in memory)."""

    def __init__(self, ctx: AppContext) -> None:
        self.seen = self._read(ctx)[0]
        self.awaiting: tuple[str, str] | None = None  # (sha256, requested by) not yet applied
        self.said_mismatch = False
        self.refused_file: str | None = None

    @staticmethod
    def _read(ctx: AppContext) -> tuple[int, str | None, str | None]:
        with peeking(ctx.db) as connection:
            row = connection.execute(_READ).one()
        return row.generation, row.requested_sha256, row.requested_by

    def poll_policy_reload(self, ctx: AppContext) -> ReloadOutcome | None:
        """The timer: run a new reload request, or (POLICY_RELOAD_ON_CHANGE) a changed file.
        What it did, None when there was nothing to do."""
        generation, sha, by = self._read(ctx)
        if generation > self.seen and sha is not None:
            self.seen, self.awaiting, self.said_mismatch = generation, (sha, by or ""), False
        if self.awaiting is not None:
            return self._requested(ctx, *self.awaiting)
        if not ctx.settings.policy_reload_on_change:
            return None
        try:
            current = file_sha256(ctx.settings.policy_file)
        except OSError:
            current = UNREADABLE  # the reload below says why, once
        if current in (ctx.in_force_now.sha256, self.refused_file):
            return None
        outcome = reload_policy(ctx, trigger=FILE_CHANGED)
        refused = outcome.result == "refused"
        self.refused_file = (outcome.sha256 or UNREADABLE) if refused else None
        return outcome

    def _requested(self, ctx: AppContext, sha: str, by: str) -> ReloadOutcome:
        outcome = reload_policy(ctx, trigger=REQUESTED, expected_sha256=sha, actor=by or REQUESTED)
        if outcome.result == "mismatch":
            if not self.said_mismatch:
                log.warning("policy_reload_refused", reason=outcome.reason, trigger=REQUESTED)
                self.said_mismatch = True
            return outcome
        self.awaiting = None
        return outcome
