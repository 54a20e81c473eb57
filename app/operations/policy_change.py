"""A new policy must still cover every session that may hold access: a system (or role) dropped
while sessions of it are open could never be revoked, since the provider that would revoke it
is built from the policy. `serve` refuses such a policy at start and `prod-access check` shows
it as a problem, naming the sessions and how to end them first.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AccessSession, SessionState
from app.policy import Policy

#: Sessions that may hold access or are about to: a provider must stay configured for them.
UNFINISHED = (
    SessionState.granting,
    SessionState.grant_unknown,
    SessionState.active,
    SessionState.revoking,
    SessionState.revoke_failing,
)


def covers(policy: Policy, session: AccessSession) -> bool:
    """Does the policy still have the session's system and role?"""
    system = policy.system(session.system_id)
    return system is not None and system.role(session.role_id) is not None


def uncovered_sessions(db: Session, policy: Policy) -> list[AccessSession]:
    """Unfinished sessions whose system or role the policy no longer has, oldest first."""
    rows = db.scalars(
        select(AccessSession)
        .where(AccessSession.state.in_(UNFINISHED))
        .order_by(AccessSession.created_at)
    )
    return [row for row in rows if not covers(policy, row)]


def describe_uncovered(policy_file: str, sessions: list[AccessSession]) -> str:
    """One paragraph for the operator: what the policy drops, the sessions, what to do."""
    listed = ", ".join(
        f"{s.id} ({s.system_id} {s.role_id}, {s.state.value}, {s.requester_id})" for s in sessions
    )
    first = sessions[0].id
    return (
        f"{policy_file} drops a system or role that open sessions still hold: {listed}. "
        "Nothing could revoke them under this policy. End them first, with the policy file "
        f"that still has them: `prod-access revoke {first} --policy OLD_POLICY_FILE` for each "
        "(or wait until they have ended), then deploy the new policy."
    )
