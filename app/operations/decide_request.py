"""Approve or deny a pending request. The clicker is checked here, on the server, every time:
only the system's approvers, never the requester, and only while the request is pending — so
a double-clicked Approve creates one session and grants once.
"""

from __future__ import annotations

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, AccessSession, RequestState, SessionState
from app.operations.common import INTENT_LEASE, load_locked, new_id
from app.operations.errors import ConflictError, NotAllowed


def _check_decider(ctx: AppContext, request: AccessRequest, user_id: str, verb: str) -> None:
    system = ctx.policy.system(request.system_id)
    if system is None:
        raise NotAllowed(f"System {request.system_id} is no longer in the policy.")
    if user_id == request.requester_id:
        raise NotAllowed(f"You can't {verb} your own request; another approver has to.")
    if not ctx.policy.may_approve(system, user_id):
        approvers = ", ".join(f"<@{a}>" for a in system.approvers)
        raise NotAllowed(f"Only the approvers of {system.name} can {verb} this: {approvers}.")
    if request.state != RequestState.pending:
        by = f" by <@{request.decided_by}>" if request.decided_by else ""
        raise ConflictError(f"Request {request.id} was already {request.state.value}{by}.")


def approve_request(ctx: AppContext, request_id: str, approver_id: str) -> AccessSession:
    """pending → approved, with a new session in `granting` (the grant itself comes next)."""
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        _check_decider(ctx, request, approver_id, "approve")
        system = ctx.policy.system(request.system_id)
        role = system.role(request.role_id) if system else None
        if role is None:
            raise NotAllowed(f"Access {request.role_id} is no longer in the policy.")
        now = clock.now()
        request.state, request.decided_by, request.decided_at = (
            RequestState.approved,
            approver_id,
            now,
        )
        session = AccessSession(
            id=new_id("S"),
            request=request,
            request_id=request.id,
            requester_id=request.requester_id,
            system_id=request.system_id,
            role_id=request.role_id,
            grant_name=role.grant,
            state=SessionState.granting,
            created_at=now,
            attempts=0,
            next_attempt_at=now + INTENT_LEASE,
        )
        db.add(session)
        audit.record(db, "approved", approver_id, request=request, session=session)
    ctx.notify.request_decided(request)
    return session


def deny_request(ctx: AppContext, request_id: str, approver_id: str) -> AccessRequest:
    with transaction(ctx.db) as db:
        request = load_locked(db, AccessRequest, request_id)
        _check_decider(ctx, request, approver_id, "deny")
        request.state, request.decided_by, request.decided_at = (
            RequestState.denied,
            approver_id,
            clock.now(),
        )
        audit.record(db, "denied", approver_id, request=request)
    ctx.notify.request_decided(request)
    return request
