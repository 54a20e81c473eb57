"""The lines of the approval card's thread: one thread tells the story of one access (an
extension's events go in the original card's thread), from the full reason and each approval
to the grant, the end, the closeout note, and what needs the approvers (an unreviewed
break-glass, a revoke that keeps failing, a missing closeout note, drift). A line meant for
the whole approver channel is broadcast by the notifier; the text is the same."""

from __future__ import annotations

from datetime import timedelta

from app.models import (
    AccessRequest,
    AccessSession,
    RequestKind,
    RequestState,
    ReviewState,
    SessionState,
)
from app.policy import Policy
from app.policy_values import format_duration
from app.slack.blocks.card import decided_line, end_reason_text
from app.slack.blocks.delegation import approval_by
from app.slack.blocks.dm import denial_reason
from app.slack.blocks.mrkdwn import what
from app.slack.text import escape, quote, slack_date


def full_reason(request: AccessRequest) -> str:
    """The reason in full, when the card shows it cut (card.reason_cut)."""
    return "*Full reason*\n" + quote(request.reason, 2900)


def extension_asked(request: AccessRequest, channel: str) -> str:
    """In the original card's thread: the requester asked for more time (a new card)."""
    more = format_duration(timedelta(seconds=request.duration_seconds))
    return (
        f":stopwatch: <@{request.requester_id}> asked for {more} more "
        f"(request `{request.id}`, a new card in <#{channel}>)."
    )


def breakglass_taken(request: AccessRequest, approvers: str) -> str:
    """A break-glass was granted without approval: `approvers` (mentions) are to review it."""
    return (
        f":rotating_light: Break-glass by <@{request.requester_id}>: access granted without "
        f"approval. {approvers}: please review (Acknowledge or Flag on the card)."
    )


def approval_counted(request: AccessRequest, approver_id: str) -> str:
    """One approval of several counted; how many are still needed."""
    count, required = len(request.approved_by), request.approvals_required
    return (
        f":ballot_box_with_check: {approval_by(request, approver_id)} approved "
        f"({count} of {required}); "
        f"{required - count} more needed."
    )


def decided(request: AccessRequest, session: AccessSession | None) -> str | None:
    """A decision the thread tells: a denial (in the request's own thread) or an approved
    extension's new end (in the original access's thread). None for the rest: the card says."""
    if request.state == RequestState.denied:
        return f":x: <@{request.decided_by}> denied the request.{denial_reason(request)}"
    if request.state in (RequestState.lapsed, RequestState.cancelled):
        return None
    if request.kind == RequestKind.extension and session and session.expires_at:
        ends = slack_date(session.expires_at)
        return f":stopwatch: Extended until {ends}. {decided_line(request)}"
    return None


def breakglass_unreviewed(policy: Policy, request: AccessRequest, approvers: str) -> str:
    """The escalation of a break-glass nobody reviewed in time (also posted in the system's
    escalation channel)."""
    return (
        f":rotating_light: *Break-glass not reviewed* — <@{request.requester_id}> took "
        f"{what(request, policy)} (`{request.id}`, ticket {escape(request.ticket)}) without "
        f"approval. {approvers}: please review it on the card (reminder {request.escalations})."
    )


def reviewed(request: AccessRequest) -> str:
    """The retro-review of a break-glass: flagged (access ends now) or acknowledged."""
    if request.review_state == ReviewState.flagged:
        return (
            f":triangular_flag_on_post: <@{request.reviewed_by}> flagged this break-glass "
            "access; it is being ended now."
        )
    return f":ballot_box_with_check: Reviewed and acknowledged by <@{request.reviewed_by}>."


def granted(session: AccessSession) -> str:
    """The provider granted the access, to this identity, until the session's end."""
    assert session.expires_at is not None
    return (
        f":unlock: Granted to `{escape(session.identity or '')}`; "
        f"ends {slack_date(session.expires_at)}."
    )


def grant_failed(session: AccessSession) -> str:
    """The grant failed, or its outcome is unknown (the provider is asked again)."""
    error = escape(session.last_error or "unknown error")
    if session.state == SessionState.grant_unknown:
        return f":warning: Grant outcome unknown: {error}. Checking again."
    return f":warning: Grant failed: {error}. Nothing was granted."


def ended(session: AccessSession) -> str:
    """The access has ended, and why."""
    return f":lock: Access ended ({end_reason_text(session)})."


def revoke_completed(session: AccessSession) -> str:
    """A revoke that had been failing went through (broadcast: the alert was too)."""
    return (
        f":white_check_mark: Revoke of `{session.id}` completed after {session.attempts} "
        "failed attempts; the access is removed."
    )


def revoke_failed(session: AccessSession) -> str:
    """The revoke failed: the access is still in place, and when it is tried again."""
    retry = slack_date(session.next_attempt_at) if session.next_attempt_at else "soon"
    return (
        f":rotating_light: Revoke failed (attempt {session.attempts}): "
        f"{escape(session.last_error or 'unknown error')}. Access is still in place; "
        f"retrying {retry}."
    )


def closeout_missing(policy: Policy, session: AccessSession) -> str:
    """After the last reminder: the approvers hear that the closeout note is still missing."""
    return (
        f":memo: *Closeout note missing* — <@{session.requester_id}> has not said what "
        f"changed during {what(session, policy)} (`{session.id}`), after "
        f"{session.reminders_sent} reminders."
    )


def closeout_note(session: AccessSession) -> str:
    """The requester's closeout note: what changed, and the follow-ups."""
    followups = session.closeout_followups or "none"
    return (
        f":memo: *Closeout* by <@{session.requester_id}> for `{session.id}`\n"
        f"*What changed*\n{quote(session.closeout_changes or '', 1400)}\n"
        f"*Follow-ups*\n{quote(followups, 1400)}"
    )


def drift(policy: Policy, session: AccessSession, detail: str) -> str:
    """Reconciliation found access that does not match the session (`detail`: what)."""
    return (
        f":rotating_light: *Access drift* — {what(session, policy)} of "
        f"<@{session.requester_id}> (`{session.id}`): {escape(detail)}"
    )
