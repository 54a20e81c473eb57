"""The approval card in the approver channel, rendered whole from the current state of the
request and its session (updated in place on every change): its header, the facts, the
reason, the status lines (approvals so far, how it was decided, the retro-review of a
break-glass, the session's state and why it ended) and the buttons that state offers."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from app import clock
from app.models import (
    AccessRequest,
    AccessSession,
    CloseoutState,
    EndReason,
    RequestKind,
    RequestState,
    ReviewState,
    Route,
    SessionState,
)
from app.operations.decide_request import DENY_REASON_MAX
from app.policy import Policy, System
from app.policy_values import format_duration
from app.slack.blocks import delegation, ticket
from app.slack.blocks.mrkdwn import access_kind, as_dicts, code, context, section
from app.slack.ids import Action
from app.slack.text import escape, quote, slack_date, truncate

#: On a pending card whose role needs step-up (app/operations/step_up.py).
STEP_UP_LINE = (
    ":closed_lock_with_key: *Needs step-up*: Approve counts after a fresh MFA login "
    "at the identity provider"
)
CARD_REASON_MAX = 700  # longer reasons are cut on the card; the full text goes in the thread


def card_text(request: AccessRequest) -> str:
    """Notification fallback text for the card (no user text beyond the ticket, escaped)."""
    kind = {
        RequestKind.extension: "Extension request",
        RequestKind.access: "BREAK-GLASS access"
        if request.route == Route.breakglass
        else "Access request",
    }[request.kind]
    return (
        f"{kind} {request.id} from <@{request.requester_id}>: {escape(request.role_id)} on "
        f"{escape(request.system_id)} for "
        f"{format_duration(timedelta(seconds=request.duration_seconds))} "
        f"({escape(request.ticket)})"
    )


def card_title(request: AccessRequest, system: System | None = None) -> str:
    """The card's header (plain text): the kind of access, by the system's tier."""
    if request.kind == RequestKind.extension:
        return "Extension request"
    if request.route == Route.breakglass:
        return f"BREAK-GLASS {access_kind(system)}"
    return f"{access_kind(system).capitalize()} request"


def reason_cut(request: AccessRequest) -> bool:
    """Is the reason too long for the card (so the thread carries the full text)?"""
    return len(request.reason) > CARD_REASON_MAX


def approval_card(
    policy: Policy,
    request: AccessRequest,
    session: AccessSession | None,
    approvers: str = "",
) -> list[dict]:
    """The card in the approver channel, rendered from the current state of request and session
    (for an extension: the session it extends). `approvers`: who may decide, as mentions."""
    system = policy.system(request.system_id)
    system_name = (
        f"{escape(system.name)} ({code(system.id)})" if system else code(request.system_id)
    )
    duration = format_duration(timedelta(seconds=request.duration_seconds))
    fields = [
        f"*Requester*\n<@{request.requester_id}>",
        f"*System*\n{system_name}",
        f"*Access*\n{escape(request.role_id)}",
        f"*{'Extra time' if request.kind == RequestKind.extension else 'Duration'}*\n{duration}",
        ticket.ticket_field(request),
        f"*Request*\n`{request.id}`",
    ]
    blocks: list[Block] = [HeaderBlock(text=card_title(request, system))]
    if request.kind == RequestKind.extension and session is not None:
        ends = slack_date(session.expires_at) if session.expires_at else "—"
        blocks.append(
            context(
                f":link: Extends session `{session.id}` (request `{session.request_id}`), "
                f"which now ends {ends}. The original card's thread tells its story."
            )
        )
    reason = quote(request.reason, CARD_REASON_MAX)
    if reason_cut(request):
        reason += "\n_(cut; the full reason is in the thread)_"
    blocks.append(SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]))
    blocks += [context(line) for line in ticket.ticket_lines(request)]
    if request.identity and request.grant_name:
        blocks.append(context(":key: " + grants_line(request)))
    blocks.append(section("*Reason*\n" + reason))
    retry_open = (
        system is not None
        and session is not None
        and request.review_state != ReviewState.flagged
        and clock.now() <= policy.retry_until(system, request.decided_at or session.created_at)
    )
    step_up = system is not None and policy.step_up(system, request.role_id)
    blocks += _card_status(request, session, approvers, retry_open, step_up)
    return as_dicts(blocks)


def grants_line(request: AccessRequest) -> str:
    """Exactly what approving gives: "Grants `checkout_readonly` to `nina` on `checkout-db`"."""
    return (
        f"Grants {code(request.grant_name or '')} to {code(request.identity or '')} on "
        f"{code(request.system_id)}"
    )


def _card_status(
    request: AccessRequest,
    session: AccessSession | None,
    approvers: str,
    retry_open: bool,
    step_up: bool = False,
) -> list[Block]:
    if request.state == RequestState.pending:
        count, required = len(request.approved_by), request.approvals_required
        lines = []
        if step_up:
            lines.append(STEP_UP_LINE)
        if required > 1 or count:
            who = ", ".join(delegation.approver(a) for a in request.approvals) or "nobody yet"
            lines.append(f":ballot_box_with_check: *{count} of {required} approvals* ({who})")
        if approvers:
            lines.append(f"Approvers: {approvers}")
        if request.decide_by:
            lines.append(f"Lapses {slack_date(request.decide_by)} if nobody decides.")
        return [
            *([context("\n".join(lines))] if lines else []),
            decision_buttons(request, "decision"),
        ]
    when = slack_date(request.decided_at) if request.decided_at else ""
    if request.state == RequestState.denied:
        line = f":x: *Denied* by <@{request.decided_by}> {when}"
        if request.decision_note:
            line += "\n*Reason:* " + escape(truncate(request.decision_note, DENY_REASON_MAX))
        return [context(line)]
    if request.state == RequestState.cancelled:
        return [context(f":heavy_multiplication_x: *Cancelled* by the requester {when}")]
    if request.state == RequestState.lapsed:
        why = escape(request.decision_note or "nobody decided in time")
        return [context(f":hourglass: *Lapsed* {when}: {why}")]
    lines = [decided_line(request)]
    extra: list[Block] = []
    if request.route == Route.breakglass:
        lines.append(_review_line(request))
        if request.review_state == ReviewState.due:
            extra.append(review_buttons(request, "review"))
    if request.kind == RequestKind.extension:
        if session is not None and session.expires_at:
            lines.append(
                f":stopwatch: Session `{session.id}` now ends {slack_date(session.expires_at)}"
            )
    elif session is not None:
        lines.append(_session_status(session))
        if session.state == SessionState.grant_failed and retry_open:
            extra.append(
                ActionsBlock(
                    block_id="grant_failed",
                    elements=[
                        ButtonElement(
                            text="Retry grant", action_id=Action.retry_grant, value=session.id
                        )
                    ],
                )
            )
    return [context("\n".join(lines)), *extra]


def decision_buttons(request: AccessRequest, block_id: str) -> ActionsBlock:
    """Approve / Deny (the card and the approver's Home tab)."""
    return ActionsBlock(
        block_id=block_id,
        elements=[
            ButtonElement(
                text="Approve", action_id=Action.approve, value=request.id, style="primary"
            ),
            ButtonElement(text="Deny", action_id=Action.deny, value=request.id, style="danger"),
        ],
    )


def review_buttons(request: AccessRequest, block_id: str) -> ActionsBlock:
    """Acknowledge / Flag, the retro-review of a break-glass access."""
    return ActionsBlock(
        block_id=block_id,
        elements=[
            ButtonElement(
                text="Acknowledge",
                action_id=Action.breakglass_ack,
                value=request.id,
                style="primary",
            ),
            ButtonElement(
                text="Flag and end access",
                action_id=Action.breakglass_flag,
                value=request.id,
                style="danger",
            ),
        ],
    )


def decided_line(request: AccessRequest) -> str:
    """How an approved request was approved, in one line."""
    when = slack_date(request.decided_at) if request.decided_at else ""
    rule = escape(request.decision_note or "")
    if request.route == Route.breakglass:
        return (
            f":rotating_light: *BREAK-GLASS*: granted at once to <@{request.requester_id}> {when}"
        )
    if request.route == Route.oncall:
        return f":pager: *Auto-approved: on call* {when} ({rule})"
    if request.route in (Route.staging, Route.auto):
        return f":robot_face: *Auto-approved* {when} ({rule})"
    return f":white_check_mark: *Approved* by {delegation.approvers_shown(request)} {when}"


def approved_by(request: AccessRequest) -> str:
    """Who approved, as mentions (the decider when no approval was counted), without whom a
    delegate approved for: the requester's words (the card's are `delegation.approvers_shown`)."""
    return ", ".join(f"<@{a}>" for a in request.approved_by) or f"<@{request.decided_by}>"


def _review_line(request: AccessRequest) -> str:
    if request.review_state == ReviewState.due:
        due = slack_date(request.review_due_at) if request.review_due_at else "now"
        nudged = f" · escalated {request.escalations} time(s)" if request.escalations else ""
        return f":eyes: *Needs a retro-review* by {due}{nudged}"
    when = slack_date(request.reviewed_at) if request.reviewed_at else ""
    if request.review_state == ReviewState.flagged:
        return (
            f":triangular_flag_on_post: *Flagged* by <@{request.reviewed_by}> {when}; access ended"
        )
    return f":ballot_box_with_check: *Reviewed* (acknowledged) by <@{request.reviewed_by}> {when}"


def _session_status(session: AccessSession) -> str:
    state = session.state
    if state == SessionState.granting:
        return ":hourglass_flowing_sand: Granting access…"
    if state == SessionState.grant_failed:
        error = escape(session.last_error or "unknown error")
        return f":warning: *Grant failed*: {error}. Nothing was granted."
    if state == SessionState.grant_unknown:
        error = escape(session.last_error or "unknown error")
        return (
            f":warning: *Grant outcome unknown*: {error}. The provider is being asked again; "
            "if the access turns out to be in place, it is revoked."
        )
    if state == SessionState.active and session.expires_at:
        return f":unlock: *Active* (`{session.id}`) until {slack_date(session.expires_at)}"
    if state == SessionState.revoking:
        return ":hourglass_flowing_sand: Ending access…"
    if state == SessionState.revoke_failing:
        return (
            f":rotating_light: *Revoke failing* (attempt {session.attempts}): "
            f"{escape(session.last_error or 'unknown error')}. "
            "Still retrying; access is NOT yet removed."
        )
    ended = slack_date(session.ended_at) if session.ended_at else ""
    line = f":lock: *Ended* {ended} ({end_reason_text(session)})"
    if session.closeout_state == CloseoutState.closed_out:
        line += " · closeout note in thread"
    elif session.closeout_state == CloseoutState.prompted:
        line += " · closeout note pending"
    return line


def end_reason_text(session: AccessSession) -> str:
    """Why the access ended, as a clause: "expired", "ended early by @bob"…"""
    if session.end_reason == EndReason.released:
        return f"ended early by <@{session.ended_by}>"
    if session.end_reason == EndReason.admin:
        return f"ended by admin {escape(session.ended_by or '')}"
    if session.end_reason == EndReason.unconfirmed:
        return "its grant's answer was lost; found in place afterwards and revoked"
    if session.end_reason == EndReason.flagged:
        return "flagged in review"
    if session.end_reason == EndReason.incident_resolved:
        return f"the incident {escape(session.request.ticket)} was resolved"
    return "expired"
