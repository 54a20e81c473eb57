"""Incident-bound access: a session whose ticket's incident is resolved is ended, as if its time
had run out, through the same revoke the "End now" button and expiry use.

Which sessions: active ones whose request was handled by a tracker rule (`ticket_tracker` set)
and whose rule, found again by the policy in force now, has `end_access_on_resolve` (default:
yes for incident trackers, no for issue trackers; app/trackers/base.py).

Rules it relies on:
- the tracker's API is the truth: a session ends only when its tracker, asked now, says the
  ticket is resolved or closed. A webhook (app/incident_webhooks.py) only says which incident to
  ask about, so a webhook replayed later can do no more than the next poll would;
- each distinct ticket is looked up once per run, whatever the number of its sessions; a tracker
  that cannot answer changes nothing: the failure is logged and counted
  (`prod_access_tracker_failures`), its other tickets wait for the next run, and the next run
  asks again;
- ending is `active → revoking` under the session's row lock (`end_resolved_session`): of two
  replicas ending the same session, the second finds it no longer active and does nothing. The
  audit event is `incident_resolved_ended`; the person then gets the usual closeout prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select

from app import audit, metrics
from app.context import AppContext
from app.db import reading, transaction
from app.models import AccessRequest, AccessSession, EndReason, SessionState
from app.operations.common import load_locked
from app.operations.end_session import revoke_claimed, start_ending
from app.trackers.base import Ticket, TrackerError, TrackerUse

log = structlog.get_logger(__name__)


@dataclass
class ResolvedRun:
    """What one run did: tickets asked about, sessions ended, tickets the tracker could not
    answer for (asked again next run)."""

    looked_up: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ticket:
    use: TrackerUse
    ticket: str
    session_ids: tuple[str, ...]


def incident_bound_tickets(
    ctx: AppContext, refers_to: Callable[[TrackerUse, str], bool] | None = None
) -> list[_Ticket]:
    """The distinct tickets of active sessions that end when their incident is resolved, each
    with its sessions; `refers_to(use, ticket)`: only those it says yes to."""
    if ctx.trackers is None:
        return []
    with reading(ctx.db) as db:
        rows = db.execute(
            select(AccessSession.id, AccessSession.system_id, AccessRequest.ticket)
            .join(AccessRequest, AccessRequest.id == AccessSession.request_id)
            .where(
                AccessSession.state == SessionState.active,
                AccessRequest.ticket_tracker.is_not(None),
            )
            .order_by(AccessSession.id)
        ).all()
    grouped: dict[tuple[str, str], tuple[TrackerUse, list[str]]] = {}
    for session_id, system_id, ticket in rows:
        use = ctx.trackers.for_ticket(system_id, ticket)
        if use is None or not use.ends_access_on_resolve:
            continue
        if refers_to is not None and not refers_to(use, ticket.strip()):
            continue
        grouped.setdefault((use.where, ticket.strip()), (use, []))[1].append(session_id)
    return [_Ticket(use, ticket, tuple(ids)) for (_, ticket), (use, ids) in grouped.items()]


def end_sessions_if_resolved(ctx: AppContext, tickets: list[_Ticket]) -> ResolvedRun:
    """Ask each ticket's tracker once; end the sessions of those resolved or closed."""
    run = ResolvedRun()
    unreachable: set[str] = set()  # rules whose tracker failed this run: not asked again now
    for item in tickets:
        if item.use.where in unreachable:
            run.failed.append(item.ticket)
            continue
        run.looked_up.append(item.ticket)
        try:
            found = item.use.tracker.lookup(item.ticket)
        except TrackerError as exc:
            metrics.TRACKER_FAILURES.labels(tracker=item.use.rule.type, call="lookup").inc()
            log.warning(
                "incident_lookup_failed", tracker=item.use.rule.type, ticket=item.ticket,
                error=str(exc), retryable=exc.retryable,
            )  # fmt: skip
            run.failed.append(item.ticket)
            if exc.retryable:
                unreachable.add(item.use.where)
            continue
        except Exception:  # an adapter's bug must not stop the other tickets
            metrics.TRACKER_FAILURES.labels(tracker=item.use.rule.type, call="lookup").inc()
            log.exception("incident_lookup_crashed", tracker=item.use.rule.type)
            run.failed.append(item.ticket)
            continue
        if found.state == "open":
            continue
        for session_id in item.session_ids:
            if end_resolved_session(ctx, session_id, item.use, found):
                run.ended.append(session_id)
    return run


def end_resolved_session(ctx: AppContext, session_id: str, use: TrackerUse, found: Ticket) -> bool:
    """End one session because its incident is resolved; False (and nothing done) when it is no
    longer active: it ended meanwhile, or another replica is ending it."""
    with transaction(ctx.db) as db:
        session = load_locked(db, AccessSession, session_id)
        if session.state != SessionState.active:
            return False
        note = f"{found.key} is {found.status} in {use.name}"
        start_ending(db, session, EndReason.incident_resolved, audit.SYSTEM_ACTOR, note)
    log.info("incident_resolved_ended", session_id=session_id, ticket=found.key)
    revoke_claimed(ctx, session)
    return True


def end_sessions_of_resolved_incidents(ctx: AppContext) -> ResolvedRun:
    """One poll: every incident-bound ticket of an active session, asked once."""
    return end_sessions_if_resolved(ctx, incident_bound_tickets(ctx))
