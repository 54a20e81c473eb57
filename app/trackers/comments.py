"""What a ticket is told about the access behind it: one plain-text comment on the grant, one on
the end (expiry, release, flag, admin), one with the closeout note. Pure functions.

A comment says who, which system, role and identity, the window, who approved (or which rule
did), and the closeout note; never a secret: no config values, no tokens, and the whole text
passes through app.text.redact (every secret the bot knows taken out) last.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from app.models import AccessSession, EndReason, Route
from app.policy_values import format_duration
from app.text import redact


class TicketEvent(StrEnum):
    """When a ticket hears from prod-access (the values are stored: never change them)."""

    granted = "granted"
    ended = "ended"
    closeout = "closeout"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def _who(session: AccessSession) -> str:
    return session.email or session.requester_id


def _access(session: AccessSession, system_name: str) -> str:
    return f"{session.role_id} on {system_name} ({session.system_id}) as {session.identity or '—'}"


def comment_text(
    event: TicketEvent, session: AccessSession, system_name: str, approvers: list[str]
) -> str:
    """The comment for `event` (`approvers`: who approved, as people read them)."""
    request = session.request
    lines = [f"prod-access · request {request.id} · session {session.id}"]
    if event == TicketEvent.granted:
        planned = timedelta(seconds=request.duration_seconds)
        lines.append(f"Access granted to {_who(session)}: {_access(session, system_name)}.")
        lines.append(
            f"Window: {_when(session.granted_at)} until {_when(session.expires_at)} "
            f"({format_duration(planned)})."
        )
        lines.append(_decided(session, approvers))
    elif event == TicketEvent.ended:
        lines.append(f"Access ended for {_who(session)}: {_access(session, system_name)}.")
        lines.append(
            f"Window: {_when(session.granted_at)} until {_when(session.ended_at)} "
            f"({_end_reason(session)})."
        )
    else:
        lines.append(f"Closeout note from {_who(session)} ({_access(session, system_name)}):")
        lines.append("What changed: " + (session.closeout_changes or "—"))
        if session.closeout_followups:
            lines.append("Follow-ups: " + session.closeout_followups)
    return redact("\n".join(lines))


def _decided(session: AccessSession, approvers: list[str]) -> str:
    request = session.request
    if request.route == Route.breakglass:
        return "Break-glass: granted at once, reviewed by the approvers afterwards."
    if request.route != Route.approvers:
        return f"Approved by the policy ({request.decision_note or request.route.value})."
    return "Approved by " + (", ".join(approvers) or "an approver") + "."


def _end_reason(session: AccessSession) -> str:
    reason = session.end_reason
    if reason == EndReason.released:
        return "ended early by the requester"
    if reason == EndReason.admin:
        return f"ended by admin {session.ended_by or ''}".strip()
    if reason == EndReason.flagged:
        return "ended: flagged in review"
    if reason == EndReason.unconfirmed:
        return "revoked after a lost grant answer"
    if reason == EndReason.incident_resolved:
        return "ended: the incident was resolved"
    return "expired"
