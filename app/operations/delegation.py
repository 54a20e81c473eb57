"""Out of office: an approver hands their approvals to another approver for a window (a
delegation), and the questions the one rule of who decides (decide_request.may_decide) asks
about it.

Rules it relies on:
- a delegation runs from when it is made until `ends_at` (at most MAX_DELEGATION away), or
  until the delegator or the delegate ends it; it is made by the delegator (the Home tab's
  button) or by an operator for them (the CLI, `--from`), and both are audited
  (`delegation_created`, `delegation_ended`);
- the delegate must approve (some role of) a system the delegator approves; the delegation
  counts on exactly those systems, by the policy in force at each click;
- while it runs, the delegate may decide a request the delegator may decide, also where the
  delegate is not on the role's own approver list; the approval is recorded as the delegate's
  "for" the delegator (`Approval.on_behalf_of`);
- it never lets anyone decide their own request, nor act for the requester (nobody approves
  their own request, not even through someone else); there are no chains: only the delegator's
  own right to approve is handed on;
- N of M counts people: a delegate's approval for someone counts as that person's, and one
  click counts once (an approver who is also a delegate approves as themself).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit, clock
from app.context import AppContext
from app.db import reading, transaction
from app.models import AccessRequest, Approval
from app.models_features import Delegation
from app.operations import people
from app.operations.common import new_id
from app.operations.errors import ConflictError, NotAllowed, NotFound
from app.policy import System

MAX_DELEGATION = timedelta(days=30)


def active(db: Session, now: datetime, *, to_id: str | None = None) -> list[Delegation]:
    """Delegations running at `now` (to `to_id` only, when given), oldest first."""
    query = select(Delegation).where(
        Delegation.ended_at.is_(None), Delegation.starts_at <= now, Delegation.ends_at > now
    )
    if to_id is not None:
        query = query.where(Delegation.to_id == to_id)
    return list(db.scalars(query.order_by(Delegation.created_at)))


def of_person(db: Session, user_id: str, now: datetime) -> list[Delegation]:
    """The running delegations a person gave or received (their Home tab shows them)."""
    return [d for d in active(db, now) if user_id in (d.from_id, d.to_id)]


def systems_approved_by(ctx: AppContext, user_id: str) -> list[System]:
    """The systems a person approves (any of their roles), by the policy in force now."""
    return [s for s in ctx.policy.systems if people.may_approve(ctx, s, None, user_id)]


def acting_for(ctx: AppContext, request: AccessRequest, user_id: str) -> list[str]:
    """The people `user_id` may decide this request for, through a running delegation: each an
    approver of its role (not the requester) who handed their approvals to `user_id`, who
    approves the request's system too."""
    with reading(ctx.db) as db:
        given = [d.from_id for d in active(db, clock.now(), to_id=user_id)]
    system = ctx.policy.system(request.system_id)
    if not given or system is None or not people.may_approve(ctx, system, None, user_id):
        return []
    return [
        delegator
        for delegator in dict.fromkeys(given)
        if delegator not in (request.requester_id, user_id)
        and people.may_approve(ctx, system, request.role_id, delegator)
    ]


def stand_ins(ctx: AppContext, request: AccessRequest) -> dict[str, str]:
    """Delegator → delegate, for the approvers of this request who are away (the card and the
    reminder name the delegate "for" them)."""
    with reading(ctx.db) as db:
        running = active(db, clock.now())
    return {
        d.from_id: d.to_id
        for d in running
        if d.to_id != request.requester_id and d.from_id in acting_for(ctx, request, d.to_id)
    }


def approving_for(ctx: AppContext, request: AccessRequest, approver_id: str) -> str | None:
    """Whose approval a click of `approver_id` gives (asked after `may_decide` said yes): None
    for their own, as an approver of the role; else the first delegator nobody has approved
    for yet (or the first one, refused as a repeat by `check_counts_once`)."""
    system = ctx.policy.system(request.system_id)
    if system is not None and people.may_approve(ctx, system, request.role_id, approver_id):
        return None
    delegators = acting_for(ctx, request, approver_id)
    taken = {authority(a) for a in request.approvals}
    return next((d for d in delegators if d not in taken), delegators[0] if delegators else None)


def authority(approval: Approval) -> str:
    """The person an approval counts as: the approver, or the one they approved for."""
    return approval.on_behalf_of or approval.approver_id


def check_counts_once(request: AccessRequest, approver_id: str, on_behalf_of: str | None) -> None:
    """Refuse an approval that would count someone twice: a delegate approving for a person
    who approved (or was approved for) already, or that person approving after their delegate."""
    whose = on_behalf_of or approver_id
    earlier = next((a for a in request.approvals if authority(a) == whose), None)
    if earlier is None:
        return
    if on_behalf_of is not None:
        who = people.mention(on_behalf_of)
        raise ConflictError(
            f"{who} has already approved {request.id} (themself or through a delegate); "
            "approving for them again would count them twice.",
            mentions=[who],
        )
    who = people.mention(earlier.approver_id)
    raise ConflictError(
        f"{who} already approved {request.id} for you; you count once.", mentions=[who]
    )


def still_counts(ctx: AppContext, request: AccessRequest, approval: Approval) -> bool:
    """Does an approval still count by the policy and the delegations in force now?"""
    system = ctx.policy.system(request.system_id)
    if system is None:
        return False
    if people.may_approve(ctx, system, request.role_id, approval.approver_id):
        return True
    return approval.on_behalf_of is not None and approval.on_behalf_of in acting_for(
        ctx, request, approval.approver_id
    )


def create_delegation(
    ctx: AppContext, from_id: str, to_id: str, until: datetime, actor: str
) -> Delegation:
    """`from_id` hands their approvals to `to_id` until `until`. Asked again with the same
    end, it changes nothing; with another end, the running one is replaced (ended, then made
    anew). Refused (NotAllowed) for oneself, for an end not in the future or beyond
    MAX_DELEGATION, for someone who approves nothing, and for a delegate who approves none of
    the delegator's systems."""
    now = clock.now()
    if from_id == to_id:
        raise NotAllowed("You can't hand your approvals to yourself.")
    if until <= now:
        raise NotAllowed("The end of a delegation must be in the future.")
    if until - now > MAX_DELEGATION:
        raise NotAllowed(f"A delegation lasts at most {MAX_DELEGATION.days} days; choose an end.")
    mine = systems_approved_by(ctx, from_id)
    if not mine:
        raise NotAllowed(
            f"{people.mention(from_id)} approves no system; there is nothing to hand on.",
            mentions=[people.mention(from_id)],
        )
    covered = [s.id for s in mine if people.may_approve(ctx, s, None, to_id)]
    if not covered:
        who = people.mention(to_id)
        raise NotAllowed(
            f"{who} approves none of the systems {people.mention(from_id)} approves "
            f"({', '.join(s.id for s in mine)}); choose another approver of them.",
            mentions=[who, people.mention(from_id)],
        )
    with transaction(ctx.db) as db:
        running = db.scalars(
            select(Delegation)
            .where(
                Delegation.from_id == from_id,
                Delegation.to_id == to_id,
                Delegation.ended_at.is_(None),
                Delegation.ends_at > now,
            )
            .with_for_update()
        ).all()
        same = next((d for d in running if d.ends_at == until), None)
        if same is not None:
            return same
        for old in running:
            _end(db, old, actor, now, "replaced")
        delegation = Delegation(
            id=new_id("D"),
            from_id=from_id,
            to_id=to_id,
            starts_at=now,
            ends_at=until,
            created_by=actor,
            created_at=now,
        )
        db.add(delegation)
        audit.record(
            db,
            "delegation_created",
            actor,
            delegation=delegation.id,
            delegator=from_id,
            delegate=to_id,
            until=until.isoformat(),
            systems=covered,
            **audit.present(not_covered=[s.id for s in mine if s.id not in covered]),
        )
    ctx.notify.delegation_changed(delegation.id)
    return delegation


def end_delegation(
    ctx: AppContext, delegation_id: str, actor: str, user_id: str | None = None
) -> Delegation:
    """End a running delegation now. `user_id`: the person asking in Slack, who must be its
    delegator or its delegate (the CLI, an operator's tool, passes None). A delegation that has
    ended already is refused (ConflictError), so ending it twice is audited once."""
    now = clock.now()
    with transaction(ctx.db) as db:
        delegation = db.get(Delegation, delegation_id, with_for_update=True)
        if delegation is None:
            raise NotFound(f"No delegation {delegation_id} exists.")
        if user_id is not None and user_id not in (delegation.from_id, delegation.to_id):
            raise NotAllowed(
                "Only the person who handed on their approvals, or the one who "
                "took them, can end this."
            )
        if delegation.ended_at is not None or delegation.ends_at <= now:
            raise ConflictError(f"Delegation {delegation.id} has ended already.")
        _end(db, delegation, actor, now, "ended early")
    ctx.notify.delegation_changed(delegation.id)
    return delegation


def _end(db: Session, delegation: Delegation, actor: str, now: datetime, why: str) -> None:
    delegation.ended_at, delegation.ended_by = now, actor
    audit.record(
        db,
        "delegation_ended",
        actor,
        delegation=delegation.id,
        delegator=delegation.from_id,
        delegate=delegation.to_id,
        why=why,
    )


def listed(ctx: AppContext, include_ended: bool = False) -> list[Delegation]:
    """Delegations for `prod-access delegate --list`: running ones (and the 100 latest ended
    ones, with `include_ended`), newest first."""
    now = clock.now()
    query = select(Delegation).order_by(Delegation.created_at.desc()).limit(100)
    if not include_ended:
        query = query.where(Delegation.ended_at.is_(None), Delegation.ends_at > now)
    with reading(ctx.db) as db:
        return list(db.scalars(query))
