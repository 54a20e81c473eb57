"""The expiry sweep: revoke every session whose window has ended, retry failing revokes, and
finish intents (`granting` / `revoking`) whose worker died, and ask again about grants whose
outcome is unknown (`grant_unknown`: revoked if found). Idempotent, and safe to run in every
replica at once, against one PostgreSQL:

- Claim, then call. One transaction locks a batch of due sessions with SELECT … FOR UPDATE SKIP
  LOCKED (rows another replica is claiming right now are skipped, not waited for), moves each to
  its claimed state and commits: an expiring session is ended exactly as "End access now" ends
  it (`start_ending`: `revoking`, audited `expired`), a due retry or an abandoned intent gets a
  fresh lease. Then the provider calls run on a pool of SWEEP_WORKERS threads (burst.py), and
  the outcomes are recorded a batch at a time, through the same operations the buttons use.
- Ahead of time. Sessions expiring within EXPIRY_LEAD_SECONDS are claimed already, so that a
  burst's claims are committed, its locks taken and its calls queued when it falls due; the
  provider is called at `expires_at`, or for a burst up to EXPIRY_REVOKE_AHEAD_SECONDS before
  it, by as much as the revokes queued with it take to send (burst.py), so that access ends on
  time. An extension approved within the lead finds the session ending, and is refused.
- A claim is a lease (INTENT_LEASE): a session another worker has claimed is not due until the
  lease runs out, which is how the work of a replica that died mid-call is finished by another.
- Each query reads an index ((state, expires_at), (state, next_attempt_at)), so a sweep costs
  what is due, not how many sessions exist.
- A sweep claims half its workers' worth per transaction, up to four times its workers
  in hand, and claims again as that drains; replicas sweeping at once share a burst.
- The scheduler runs the sweep when the next session falls due (less the lead), not only every
  tick, and a grant that commits wakes it (see scheduler.py), so a burst starts on time.

On SQLite the database's write lock serializes the claims; one process is the supported set-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from app import audit, clock
from app.context import AppContext
from app.db import inserts_together, is_postgres, reading, transaction
from app.jobs.burst import Burst
from app.jobs.safely import safely
from app.models import AccessRequest, AccessSession, EndReason, RequestState, SessionState
from app.operations.common import INTENT_LEASE
from app.operations.end_session import claim_revoke, start_ending
from app.operations.grant_session import confirm_grant, grant_session
from app.operations.request_access import submit_request

log = structlog.get_logger(__name__)
#: Sessions a sweep holds claimed and unfinished, per worker: enough for a burst claimed ahead
#: (EXPIRY_LEAD_SECONDS) to wait for its end with every call ready, few enough that replicas
#: share a larger one.
CLAIMED_PER_WORKER = 4

#: What is due, by the kind of claim: (states, the time column that says when).
DUE: dict[str, tuple[tuple[SessionState, ...], InstrumentedAttribute[Any]]] = {
    "expired": ((SessionState.active,), AccessSession.expires_at),
    "retried": (
        (SessionState.revoke_failing, SessionState.revoking),
        AccessSession.next_attempt_at,
    ),
    "resumed": ((SessionState.granting,), AccessSession.next_attempt_at),
    "unconfirmed": ((SessionState.grant_unknown,), AccessSession.next_attempt_at),
}


@dataclass
class SweepResult:
    """Ids of the sessions a sweep claimed: expired (now being revoked), retried (a failing
    revoke, or a revoke whose worker died), resumed (a grant whose worker died), unconfirmed
    (a grant whose outcome is unknown, asked about again)."""

    expired: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)


@dataclass
class Claims:
    """What one claiming transaction took: the sessions, committed in their claimed state."""

    expired: list[AccessSession] = field(default_factory=list)
    retried: list[AccessSession] = field(default_factory=list)
    resumed: list[AccessSession] = field(default_factory=list)
    unconfirmed: list[AccessSession] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.expired) + len(self.retried) + len(self.resumed) + len(self.unconfirmed)


def due_sessions(kind: str, now: datetime, limit: int) -> Select[AccessSession]:
    """The sessions of one kind (see DUE) that are due at `now`, oldest first, locked for the
    claiming transaction; rows locked by someone else are skipped."""
    states, column = DUE[kind]
    return (
        select(AccessSession)
        .where(AccessSession.state.in_(states), column <= now)
        .order_by(column)
        .limit(limit)
        .with_for_update(skip_locked=True, of=AccessSession)
    )


def next_due(kind: str) -> Select[datetime | None]:
    """When the next session of one kind (see DUE) falls due: the first entry of its index."""
    states, column = DUE[kind]
    return select(func.min(column)).where(AccessSession.state.in_(states))


def next_due_at(ctx: AppContext) -> datetime | None:
    """When the next session falls due, or None when none will (without SQLite's write lock)."""
    with reading(ctx.db) as db:
        times = [db.scalar(next_due(kind)) for kind in DUE]
    return min((t for t in times if t is not None), default=None)


def claim_due_sessions(ctx: AppContext, limit: int, lead: timedelta = timedelta(0)) -> Claims:
    """Claim up to `limit` due sessions in one transaction (see the module docstring); with a
    `lead`, sessions expiring within it are claimed too (their revoke waits for their end)."""
    claims = Claims()
    with transaction(ctx.db) as db, inserts_together(db):
        now = clock.now()
        for session in db.scalars(due_sessions("expired", now + lead, limit)):
            start_ending(db, session, EndReason.expired, audit.SYSTEM_ACTOR)
            claims.expired.append(session)
        if len(claims) < limit:
            for session in db.scalars(due_sessions("retried", now, limit - len(claims))):
                claim_revoke(session)
                claims.retried.append(session)
        if len(claims) < limit:
            for session in db.scalars(due_sessions("resumed", now, limit - len(claims))):
                session.next_attempt_at = now + INTENT_LEASE
                claims.resumed.append(session)
        if len(claims) < limit:
            for session in db.scalars(due_sessions("unconfirmed", now, limit - len(claims))):
                session.next_attempt_at = now + INTENT_LEASE
                claims.unconfirmed.append(session)
    return claims


def lead_of(ctx: AppContext) -> timedelta:
    """How long before their end expiring sessions are claimed (EXPIRY_LEAD_SECONDS, and at
    least EXPIRY_REVOKE_AHEAD_SECONDS)."""
    settings = ctx.settings
    return timedelta(
        seconds=max(settings.expiry_lead_seconds, settings.expiry_revoke_ahead_seconds)
    )


def expire_due_sessions(ctx: AppContext) -> SweepResult:
    """One sweep: claim what is due, a batch at a time, until nothing is left (see burst.py for
    how the calls are made). Sessions expiring within EXPIRY_LEAD_SECONDS are claimed now and
    revoked at their end, so that a burst's claims are committed before it falls due."""
    result = SweepResult()
    workers = ctx.settings.sweep_workers
    most = workers * CLAIMED_PER_WORKER  # claimed and not finished, at most
    chunk = max(1, workers // 2)  # per claiming transaction: replicas claiming at once share
    lead = lead_of(ctx)
    claims = claim_due_sessions(ctx, chunk, lead)
    if not claims:
        return result
    with Burst(ctx, workers) as burst:
        while claims:
            result.expired += [s.id for s in claims.expired]
            result.retried += [s.id for s in claims.retried]
            result.resumed += [s.id for s in claims.resumed]
            result.unconfirmed += [s.id for s in claims.unconfirmed]
            others: list[tuple[str, Callable[[], object]]] = [
                (s.id, partial(grant_session, ctx, s.id)) for s in claims.resumed
            ]
            others += [(s.id, partial(confirm_grant, ctx, s.id)) for s in claims.unconfirmed]
            burst.start(claims.expired + claims.retried, others)
            # The next batch is claimed when there is room for a batch's worth; what fell due
            # meanwhile is claimed then. Once nothing is, the sweep finishes what it started
            # (the next sweep, if the timers still run, takes what comes).
            burst.settle(most - burst.batch)
            claims = claim_due_sessions(ctx, min(chunk, most - burst.pending), lead)
    return result


def resume_interrupted(ctx: AppContext) -> SweepResult:
    """At start. On SQLite (one process) the intents left in `granting` / `revoking` were this
    process's, and nobody alive holds them: they are made due now. On PostgreSQL another replica
    may be in the middle of them, so their leases are kept, and whatever a dead process left is
    finished by the sweep when its lease runs out (INTENT_LEASE)."""
    with transaction(ctx.db) as db:
        if not is_postgres(db.get_bind()):
            rows = db.scalars(
                select(AccessSession).where(
                    AccessSession.state.in_((SessionState.granting, SessionState.revoking))
                )
            ).all()
            for row in rows:
                row.next_attempt_at = clock.now()
    return expire_due_sessions(ctx)


def announce_unposted_requests(ctx: AppContext) -> list[str]:
    """At start: pending requests whose card was never posted (the process stopped between
    storing the request and submitting it) are submitted now: what the policy decides alone
    (break-glass, staging, on call) is decided and granted, the card is posted."""
    with transaction(ctx.db) as db:
        ids = list(
            db.scalars(
                select(AccessRequest.id).where(
                    AccessRequest.state == RequestState.pending, AccessRequest.card_ts.is_(None)
                )
            )
        )
    for request_id in ids:
        safely("submit_at_start", partial(submit_request, ctx, request_id), request_id=request_id)
    return ids
