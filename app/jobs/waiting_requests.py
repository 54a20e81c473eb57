"""The timer for requests the approvers leave waiting: remind the approvers once after
`remind_approvers_after`, escalate once after `escalate_after` (app/operations/waiting_request.py).

Safe in every replica at once, as the closeout reminders are: the pending requests are read
without locks, and each step locks its request and checks again that it is due and not taken
before it records and sends it, so the replica that comes second finds it done. Pending requests
are few (they lapse after `request_ttl`), so all of them are read, and the policy in force now
says when each falls due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import or_, select

from app import clock
from app.context import AppContext
from app.db import reading
from app.jobs.safely import safely
from app.models import AccessRequest, RequestState
from app.operations.waiting_request import (
    escalate_request,
    escalation_due,
    remind_approvers,
    reminder_due,
)

BATCH = 500


@dataclass
class Nudged:
    """What one run did: the ids of the requests whose approvers were reminded, and escalated."""

    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)


def remind_and_escalate_waiting_requests(ctx: AppContext) -> Nudged:
    now = clock.now()
    with reading(ctx.db) as db:
        waiting = list(
            db.scalars(
                select(AccessRequest)
                .where(
                    AccessRequest.state == RequestState.pending,
                    or_(
                        AccessRequest.approvers_reminded_at.is_(None),
                        AccessRequest.escalated_at.is_(None),
                    ),
                )
                .order_by(AccessRequest.created_at)
                .limit(BATCH)
            )
        )
    done = Nudged()
    for request in waiting:
        rid = request.id
        remind_at, escalate_at = reminder_due(ctx, request), escalation_due(ctx, request)
        if (
            remind_at is not None
            and remind_at <= now
            and _done("approver_reminder", partial(remind_approvers, ctx, rid), rid)
        ):
            done.reminded.append(rid)
        if (
            escalate_at is not None
            and escalate_at <= now
            and _done("request_escalation", partial(escalate_request, ctx, rid), rid)
        ):
            done.escalated.append(rid)
    return done


def _done(job: str, step: Callable[[], AccessRequest | None], request_id: str) -> bool:
    """Did the step send something (None: not due, done by another worker, or it failed)?"""
    return safely(job, step, request_id=request_id) is not None
