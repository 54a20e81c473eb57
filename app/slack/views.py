"""Block Kit, built by pure functions from rows and policy (slack_sdk models enforce Slack's
limits). Every text that enters mrkdwn here (what people typed, policy names, provider errors,
ids, the static usage) goes through `text.escape` once (via `escape`, `quote`, `_code`);
mentions, channels and dates are added around it on purpose (the rule: app/slack/text.py).
`plain_text` objects (headers, buttons, options, modal titles) are shown as they are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

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
from app.operations.request_access import REASON_MAX, TICKET_MAX
from app.policy import Policy, System
from app.policy_values import format_duration
from app.slack.ids import Action, Callback
from app.slack.ids import Block as B
from app.slack.text import escape, quote, slack_date, truncate, with_mentions

# Escaped here, where it becomes mrkdwn: `<system>` must read as written, not as a link.
USAGE = escape(
    "*Usage*\n"
    "• `/prod-access` opens the request form\n"
    "• `/prod-access <system> <role> <duration> <ticket> <reason…>`, e.g. "
    "`/prod-access checkout-db write 30m PAY-184 restart payment worker`\n"
    "• `/prod-access --breakglass <system> <role> <duration> <incident> <reason…>` grants at "
    "once in an incident (if you are on the system's break-glass list); approvers review after\n"
    "• `/prod-access list` shows your pending requests and open access\n"
    "• `/prod-access done [session-id]` ends your access now\n"
    "• `/prod-access cancel <request-id>` withdraws a pending request\n"
    "• `/prod-access help` shows this"
)
CARD_REASON_MAX = 700  # longer reasons are cut on the card; the full text goes in the thread


def _mrkdwn(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))


def _dicts(blocks: list[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]


# --- slash-command answers ---------------------------------------------------------------


def help_text(policy: Policy, systems: Sequence[System] | None = None) -> str:
    """Usage and the systems this person may request (all when `systems` is None)."""
    systems = policy.systems if systems is None else systems
    lines = [USAGE, "", "*Systems you can request*"]
    if not systems:
        lines.append("None: you are not on the requesters list of any system.")
    for system in systems:
        roles = ", ".join(
            f"{_code(r.id)} (max {format_duration(policy.max_duration(system, r))})"
            for r in system.roles
        )
        tier = " _(staging: approved at once)_" if system.tier == "staging" else ""
        lines.append(f"• {_code(system.id)} {escape(system.name)}{tier}: {roles}")
    return "\n".join(lines)


def accepted_text(request: AccessRequest, rule: tuple[Route, str] | None) -> str:
    """The quick form's answer once the request is stored: what happens next, by the rule the
    policy will apply (app.operations.request_access.policy_route), if any."""
    rid = _code(request.id)
    if rule is None:
        return f"Request {rid} is on its way to the approvers."
    route, why = rule
    if route == Route.breakglass:
        return (
            f":rotating_light: Break-glass {rid}: granting now. The approvers are told and will "
            "review it."
        )
    if route == Route.oncall:
        return (
            f"Request {rid}: granted at once if you are on call now ({escape(why)}), "
            "otherwise it is on its way to the approvers."
        )
    return f"Request {rid} is approved by the policy ({escape(why)}): granting now."


def problem_text(errors: dict[str, str], mentions: Sequence[str] = ()) -> str:
    """What is wrong with a request, one line per field (`mentions`: the people the messages
    name on purpose, see InvalidRequest), then the usage."""
    lines = ["*That request can't be sent:*"]
    lines += [f"• {with_mentions(message, mentions)}" for message in errors.values()]
    return "\n".join([*lines, "", USAGE])


def list_text(requests: list[AccessRequest], sessions: list[AccessSession]) -> str:
    if not requests and not sessions:
        return "You have no pending requests and no open access."
    lines: list[str] = []
    if sessions:
        lines.append("*Your access*")
        lines += [f"• {session_line(s)}" for s in sessions]
    if requests:
        lines.append("*Waiting for approval*")
        lines += [
            f"• `{r.id}` {escape(r.role_id)} on {escape(r.system_id)} for "
            f"{format_duration(timedelta(seconds=r.duration_seconds))}, "
            f"ticket {escape(r.ticket)}, asked {slack_date(r.created_at)}"
            for r in requests
        ]
    return "\n".join(lines)


def time_left(until: datetime, now: datetime) -> str:
    """'1h 5m left' (as of the moment the text was made; Slack shows no live countdown)."""
    seconds = max(0, int((until - now).total_seconds()))
    hours, minutes = divmod((seconds + 59) // 60, 60)
    if hours:
        return f"{hours}h {minutes}m left" if minutes else f"{hours}h left"
    return f"{minutes}m left" if minutes else "ending now"


def session_line(session: AccessSession, now: datetime | None = None) -> str:
    head = f"`{session.id}` {escape(session.role_id)} on {escape(session.system_id)}"
    if session.state == SessionState.active and session.expires_at:
        left = f" ({time_left(session.expires_at, now)})" if now else ""
        return f"{head}, active until {slack_date(session.expires_at)}{left}"
    if session.state == SessionState.revoke_failing:
        return f"{head}, ending — revoke failing, retrying"
    return f"{head}, {session.state.value.replace('_', ' ')}"


# --- the request modal -------------------------------------------------------------------


def _option(text: str, value: str) -> Option:
    return Option(text=PlainTextObject(text=truncate(text, 75)), value=value)


def request_modal(
    policy: Policy,
    system_id: str | None = None,
    role_id: str | None = None,
    *,
    systems: Sequence[System] | None = None,
    breakglass: bool = False,
) -> dict:
    """The modal; choosing a system (then a role) rebuilds it with only what that allows.
    `systems`: the ones this person may request; `breakglass`: offer "Incident — grant now"
    (the person is on the chosen system's break-glass list)."""
    systems = policy.systems if systems is None else systems
    system = next((s for s in systems if s.id == system_id), None) if system_id else None
    role = system.role(role_id) if system and role_id else None
    system_options = [_option(f"{s.name} ({s.id})", s.id) for s in systems][:100]
    if not system_options:
        return View(
            type="modal",
            title="Production access",
            close="Close",
            blocks=[_mrkdwn("You are not on the requesters list of any system.")],
        ).to_dict()
    blocks: list[Block] = [
        InputBlock(
            block_id=B.system,
            label="System",
            dispatch_action=True,
            element=StaticSelectElement(
                action_id=Action.system_select,
                placeholder="Choose a system",
                options=system_options,
                initial_option=next((o for o in system_options if o.value == system_id), None),
            ),
        )
    ]
    if system is None:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text="Choose a system to see its access.")])
        )
    else:
        role_options = [
            _option(
                f"{r.id} (max {format_duration(policy.max_duration(system, r))})"
                + (f": {r.description}" if r.description else ""),
                r.id,
            )
            for r in system.roles
        ][:100]
        blocks.append(
            InputBlock(
                block_id=f"{B.role}:{system.id}",
                label="Access",
                dispatch_action=True,
                element=StaticSelectElement(
                    action_id=Action.role_select,
                    placeholder="Choose the access you need",
                    options=role_options,
                    initial_option=next((o for o in role_options if o.value == role_id), None),
                ),
            )
        )
        choices = policy.duration_choices(system, role)
        default = policy.defaults.default_duration
        initial = max((c for c in choices if c <= default), default=choices[0])
        duration_options = [_option(format_duration(c), format_duration(c)) for c in choices]
        blocks.append(
            InputBlock(
                block_id=f"{B.duration}:{system.id}:{role.id if role else ''}",
                label="Duration",
                element=StaticSelectElement(
                    action_id=Action.duration_select,
                    options=duration_options,
                    initial_option=next(
                        o for o in duration_options if o.value == format_duration(initial)
                    ),
                ),
            )
        )
    if system is not None and system.breakglass is not None and breakglass:
        within = format_duration(system.breakglass.review_within)
        blocks.append(
            InputBlock(
                block_id=f"{B.breakglass}:{system.id}",
                label="Break-glass",
                optional=True,
                hint=f"Granted at once, without approval; approvers review it within {within}.",
                element=CheckboxesElement(
                    action_id=Action.breakglass_toggle,
                    options=[_option("Incident — grant now", "breakglass")],
                ),
            )
        )
    blocks += [
        InputBlock(
            block_id=B.ticket,
            label="Ticket or incident ID",
            element=PlainTextInputElement(
                action_id=Action.ticket_input, placeholder="PAY-184 or INC-7", max_length=TICKET_MAX
            ),
        ),
        InputBlock(
            block_id=B.reason,
            label="Reason",
            element=PlainTextInputElement(
                action_id=Action.reason_input,
                multiline=True,
                max_length=REASON_MAX,
                placeholder="What are you going to do?",
            ),
        ),
    ]
    view = View(
        type="modal",
        callback_id=Callback.request_modal,
        title="Production access",
        submit="Request",
        close="Cancel",
        blocks=blocks,
    )
    return view.to_dict()


def closeout_modal(session: AccessSession) -> dict:
    view = View(
        type="modal",
        callback_id=Callback.closeout_modal,
        private_metadata=session.id,
        title="Closeout note",
        submit="Save",
        close="Later",
        blocks=[
            _mrkdwn(
                f"Your *{escape(session.role_id)}* access to *{escape(session.system_id)}* "
                f"(`{session.id}`, ticket {escape(session.request.ticket)}) has ended."
            ),
            InputBlock(
                block_id=B.changes,
                label="What did you change?",
                element=PlainTextInputElement(
                    action_id=Action.changes_input, multiline=True, max_length=2900
                ),
            ),
            InputBlock(
                block_id=B.followups,
                label="Follow-ups",
                optional=True,
                element=PlainTextInputElement(
                    action_id=Action.followups_input, multiline=True, max_length=2900
                ),
            ),
        ],
    )
    return view.to_dict()


def deny_modal(request: AccessRequest) -> dict:
    return View(
        type="modal",
        callback_id=Callback.deny_modal,
        private_metadata=request.id,
        title="Deny request",
        submit="Deny",
        close="Back",
        blocks=[
            _mrkdwn(
                f"Deny <@{request.requester_id}>'s request `{request.id}` for "
                f"*{escape(request.role_id)}* on *{escape(request.system_id)}*?"
            ),
            InputBlock(
                block_id=B.deny_reason,
                label="Reason (the requester sees it)",
                optional=True,
                element=PlainTextInputElement(
                    action_id=Action.deny_reason_input, multiline=True, max_length=DENY_REASON_MAX
                ),
            ),
        ],
    ).to_dict()


def extend_modal(policy: Policy, session: AccessSession, room: timedelta) -> dict:
    """More time for an active session: choices up to what the role's max_total still allows."""
    blocks: list[Block] = [
        _mrkdwn(
            f"Your {what(session, policy)} (`{session.id}`) ends "
            f"{slack_date(session.expires_at) if session.expires_at else 'soon'}. "
            "An extension goes to the approvers like a new request; the end moves only when "
            "it is approved."
        )
    ]
    choices = [c for c in policy.duration_choices_up_to(room)]
    if not choices:
        blocks.append(_mrkdwn("This access already has the longest time its role allows."))
        return View(type="modal", title="Extend access", close="Close", blocks=blocks).to_dict()
    options = [_option(f"+{format_duration(c)}", format_duration(c)) for c in choices]
    blocks += [
        InputBlock(
            block_id=B.duration,
            label="How much longer?",
            element=StaticSelectElement(
                action_id=Action.duration_select, options=options, initial_option=options[0]
            ),
        ),
        InputBlock(
            block_id=B.reason,
            label="Why?",
            optional=True,
            element=PlainTextInputElement(
                action_id=Action.reason_input, multiline=True, max_length=REASON_MAX
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=Callback.extend_modal,
        private_metadata=session.id,
        title="Extend access",
        submit="Ask",
        close="Cancel",
        blocks=blocks,
    ).to_dict()


# --- the approval card -------------------------------------------------------------------


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


def access_kind(system: System | None) -> str:
    """The kind of access, by the system's tier: "production access" or "staging access"."""
    return f"{system.tier} access" if system is not None else "access"


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
        f"{escape(system.name)} ({_code(system.id)})" if system else _code(request.system_id)
    )
    duration = format_duration(timedelta(seconds=request.duration_seconds))
    fields = [
        f"*Requester*\n<@{request.requester_id}>",
        f"*System*\n{system_name}",
        f"*Access*\n{escape(request.role_id)}",
        f"*{'Extra time' if request.kind == RequestKind.extension else 'Duration'}*\n{duration}",
        f"*Ticket*\n{escape(request.ticket)}",
        f"*Request*\n`{request.id}`",
    ]
    blocks: list[Block] = [HeaderBlock(text=card_title(request, system))]
    if request.kind == RequestKind.extension and session is not None:
        ends = slack_date(session.expires_at) if session.expires_at else "—"
        blocks.append(
            _context(
                f":link: Extends session `{session.id}` (request `{session.request_id}`), "
                f"which now ends {ends}. The original card's thread tells its story."
            )
        )
    reason = quote(request.reason, CARD_REASON_MAX)
    if reason_cut(request):
        reason += "\n_(cut; the full reason is in the thread)_"
    blocks.append(SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]))
    if request.identity and request.grant_name:
        blocks.append(_context(":key: " + grants_line(request)))
    blocks.append(_mrkdwn("*Reason*\n" + reason))
    retry_open = (
        system is not None
        and session is not None
        and request.review_state != ReviewState.flagged
        and clock.now() <= policy.retry_until(system, request.decided_at or session.created_at)
    )
    blocks += _card_status(request, session, approvers, retry_open)
    return _dicts(blocks)


def grants_line(request: AccessRequest) -> str:
    """Exactly what approving gives: "Grants `checkout_readonly` to `nina` on `checkout-db`"."""
    return (
        f"Grants {_code(request.grant_name or '')} to {_code(request.identity or '')} on "
        f"{_code(request.system_id)}"
    )


def _code(text: str) -> str:
    """Text as inline code; a backtick in it (an odd email) cannot end the span early."""
    return "`" + escape(text.replace("`", "'")) + "`"


def _card_status(
    request: AccessRequest, session: AccessSession | None, approvers: str, retry_open: bool
) -> list[Block]:
    if request.state == RequestState.pending:
        count, required = len(request.approved_by), request.approvals_required
        lines = []
        if required > 1 or count:
            who = ", ".join(f"<@{a}>" for a in request.approved_by) or "nobody yet"
            lines.append(f":ballot_box_with_check: *{count} of {required} approvals* ({who})")
        if approvers:
            lines.append(f"Approvers: {approvers}")
        if request.decide_by:
            lines.append(f"Lapses {slack_date(request.decide_by)} if nobody decides.")
        return [
            *([_context("\n".join(lines))] if lines else []),
            decision_buttons(request, "decision"),
        ]
    when = slack_date(request.decided_at) if request.decided_at else ""
    if request.state == RequestState.denied:
        line = f":x: *Denied* by <@{request.decided_by}> {when}"
        if request.decision_note:
            line += "\n*Reason:* " + escape(truncate(request.decision_note, DENY_REASON_MAX))
        return [_context(line)]
    if request.state == RequestState.cancelled:
        return [_context(f":heavy_multiplication_x: *Cancelled* by the requester {when}")]
    if request.state == RequestState.lapsed:
        why = escape(request.decision_note or "nobody decided in time")
        return [_context(f":hourglass: *Lapsed* {when}: {why}")]
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
    return [_context("\n".join(lines)), *extra]


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
    who = ", ".join(f"<@{a}>" for a in request.approved_by) or f"<@{request.decided_by}>"
    return f":white_check_mark: *Approved* by {who} {when}"


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
    if session.end_reason == EndReason.released:
        return f"ended early by <@{session.ended_by}>"
    if session.end_reason == EndReason.admin:
        return f"ended by admin {escape(session.ended_by or '')}"
    if session.end_reason == EndReason.unconfirmed:
        return "its grant's answer was lost; found in place afterwards and revoked"
    if session.end_reason == EndReason.flagged:
        return "flagged in review"
    return "expired"


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(text, 3000))])


# --- messages to the requester -----------------------------------------------------------


def what(session_or_request: AccessSession | AccessRequest, policy: Policy) -> str:
    """What the access is, as mrkdwn: "*write* production access to *Orders API*" (and
    "staging access" on a staging-tier system)."""
    system = policy.system(session_or_request.system_id)
    name = escape(system.name if system else session_or_request.system_id)
    return f"*{escape(session_or_request.role_id)}* {access_kind(system)} to *{name}*"


def granted_message(policy: Policy, session: AccessSession) -> list[dict]:
    assert session.expires_at is not None
    return _dicts(
        [
            _mrkdwn(
                f":unlock: You have {what(session, policy)} until "
                f"{slack_date(session.expires_at)} (session `{session.id}`, ticket "
                f"{escape(session.request.ticket)}). It ends by itself; end it sooner when done."
            ),
            session_buttons(session),
        ]
    )


def session_buttons(session: AccessSession) -> ActionsBlock:
    """End now and Extend, for the person who holds an active session."""
    return ActionsBlock(
        block_id=f"session:{session.id}",
        elements=[
            ButtonElement(
                text="End access now",
                action_id=Action.end_session,
                value=session.id,
                style="danger",
            ),
            ButtonElement(text="Extend", action_id=Action.extend_session, value=session.id),
        ],
    )


def closeout_prompt(policy: Policy, session: AccessSession, reminder: int = 0) -> list[dict]:
    if reminder:
        head = (
            f":memo: Reminder {reminder}: the closeout note for {what(session, policy)} "
            f"(`{session.id}`) is still missing."
        )
    else:
        head = (
            f":lock: Your {what(session, policy)} has ended ({end_reason_text(session)}). "
            f"What did you change? Please write a short closeout note for `{session.id}`."
        )
    return _dicts(
        [
            _mrkdwn(head),
            ActionsBlock(
                block_id="closeout",
                elements=[
                    ButtonElement(
                        text="Write closeout note",
                        action_id=Action.open_closeout,
                        value=session.id,
                        style="primary",
                    )
                ],
            ),
        ]
    )


def closeout_thread_text(session: AccessSession) -> str:
    followups = session.closeout_followups or "none"
    return (
        f":memo: *Closeout* by <@{session.requester_id}> for `{session.id}`\n"
        f"*What changed*\n{quote(session.closeout_changes or '', 1400)}\n"
        f"*Follow-ups*\n{quote(followups, 1400)}"
    )


# --- App Home ----------------------------------------------------------------------------


@dataclass
class Home:
    """What one person's Home tab shows (read by the caller, rendered by `home_view`)."""

    sessions: list[AccessSession] = field(default_factory=list)  # my open access
    requests: list[AccessRequest] = field(default_factory=list)  # my pending requests
    to_decide: list[AccessRequest] = field(default_factory=list)  # waiting for me to approve
    to_review: list[AccessRequest] = field(default_factory=list)  # break-glass to review
    history: list[AccessRequest] = field(default_factory=list)  # my last decided requests
    systems: list[System] = field(default_factory=list)  # what I may request


def home_view(policy: Policy, home: Home, now: datetime) -> dict:
    """The Home tab: my open access (End now / Extend), my pending requests (Cancel), for
    approvers the requests waiting for them (Approve / Deny) and break-glass to review, and my
    recent history. Republished on every change, so "time left" is as of the last change."""
    blocks: list[Block] = [HeaderBlock(text="Your production access")]
    if home.sessions:
        for session in home.sessions[:15]:
            blocks.append(_mrkdwn(session_line(session, now)))
            if session.state == SessionState.active:
                blocks.append(session_buttons(session))
    else:
        blocks.append(_mrkdwn("You have no open access."))
    if home.requests:
        blocks += [DividerBlock(), HeaderBlock(text="Your pending requests")]
        for request in home.requests[:10]:
            line = SectionBlock(text=MarkdownTextObject(text=request_line(request)))
            line.accessory = ButtonElement(
                text="Cancel request", action_id=Action.cancel_request, value=request.id
            )
            blocks.append(line)
    if home.to_decide:
        blocks += [DividerBlock(), HeaderBlock(text="Waiting for your approval")]
        for request in home.to_decide[:10]:
            blocks.append(_mrkdwn(f"<@{request.requester_id}>: {request_line(request)}"))
            blocks.append(decision_buttons(request, f"decide:{request.id}"))
    if home.to_review:
        blocks += [DividerBlock(), HeaderBlock(text="Break-glass to review")]
        for request in home.to_review[:5]:
            blocks.append(_mrkdwn(f"<@{request.requester_id}>: {request_line(request)}"))
            blocks.append(review_buttons(request, f"review:{request.id}"))
    if home.history:
        blocks += [DividerBlock(), HeaderBlock(text="Recent history")]
        lines = [f"• {request_line(r)}: {history_outcome(r)}" for r in home.history[:10]]
        blocks.append(_mrkdwn("\n".join(lines)))
    blocks += [DividerBlock(), _context(help_text(policy, home.systems))]
    return View(type="home", blocks=blocks[:100]).to_dict()


def request_line(request: AccessRequest) -> str:
    duration = format_duration(timedelta(seconds=request.duration_seconds))
    kind = "extension +" if request.kind == RequestKind.extension else ""
    return (
        f"`{request.id}` {escape(request.role_id)} on {escape(request.system_id)}, "
        f"{kind}{duration}, ticket {escape(request.ticket)}, asked {slack_date(request.created_at)}"
    )


def history_outcome(request: AccessRequest) -> str:
    if request.state == RequestState.approved:
        return "break-glass" if request.route == Route.breakglass else "approved"
    return request.state.value
