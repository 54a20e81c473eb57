"""Block Kit, built by pure functions from rows and policy (slack_sdk models enforce Slack's
limits). Every piece of user text goes through `text.escape` (via `quote`/`escape`) here."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
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

from app.models import (
    AccessRequest,
    AccessSession,
    CloseoutState,
    EndReason,
    RequestState,
    SessionState,
)
from app.policy import Policy, format_duration
from app.slack.ids import Action, Callback
from app.slack.ids import Block as B
from app.slack.text import escape, quote, slack_date, truncate

USAGE = (
    "*Usage*\n"
    "• `/prod-access` opens the request form\n"
    "• `/prod-access <system> <role> <duration> <ticket> <reason…>`, e.g. "
    "`/prod-access checkout-db write 30m PAY-184 restart payment worker`\n"
    "• `/prod-access list` shows your pending requests and open access\n"
    "• `/prod-access done [session-id]` ends your access now\n"
    "• `/prod-access help` shows this"
)


def _mrkdwn(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))


def _dicts(blocks: list[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]


# --- slash-command answers ---------------------------------------------------------------


def help_text(policy: Policy) -> str:
    lines = [USAGE, "", "*Systems you can request*"]
    for system in policy.systems:
        roles = ", ".join(
            f"`{r.id}` (max {format_duration(policy.max_duration(system, r))})"
            for r in system.roles
        )
        lines.append(f"• `{system.id}` {escape(system.name)}: {roles}")
    return "\n".join(lines)


def problem_text(errors: dict[str, str]) -> str:
    lines = ["*That request can't be sent:*"]
    lines += [f"• {escape(message)}" for message in errors.values()]
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
            f"• `{r.id}` {r.role_id} on {r.system_id} for "
            f"{format_duration(timedelta(seconds=r.duration_seconds))}, "
            f"ticket {escape(r.ticket)}, asked {slack_date(r.created_at)}"
            for r in requests
        ]
    return "\n".join(lines)


def session_line(session: AccessSession) -> str:
    head = f"`{session.id}` {session.role_id} on {session.system_id}"
    if session.state == SessionState.active and session.expires_at:
        return f"{head}, active until {slack_date(session.expires_at)}"
    if session.state == SessionState.revoke_failing:
        return f"{head}, ending — revoke failing, retrying"
    return f"{head}, {session.state.value.replace('_', ' ')}"


# --- the request modal -------------------------------------------------------------------


def _option(text: str, value: str) -> Option:
    return Option(text=PlainTextObject(text=truncate(text, 75)), value=value)


def request_modal(policy: Policy, system_id: str | None = None, role_id: str | None = None) -> dict:
    """The modal; choosing a system (then a role) rebuilds it with only what that allows."""
    system = policy.system(system_id) if system_id else None
    role = system.role(role_id) if system and role_id else None
    system_options = [_option(f"{s.name} ({s.id})", s.id) for s in policy.systems][:100]
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
    blocks += [
        InputBlock(
            block_id=B.ticket,
            label="Ticket or incident ID",
            element=PlainTextInputElement(
                action_id=Action.ticket_input, placeholder="PAY-184 or INC-7", max_length=100
            ),
        ),
        InputBlock(
            block_id=B.reason,
            label="Reason",
            element=PlainTextInputElement(
                action_id=Action.reason_input,
                multiline=True,
                max_length=2000,
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
                f"Your *{session.role_id}* access to *{escape(session.system_id)}* "
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


# --- the approval card -------------------------------------------------------------------


def card_text(request: AccessRequest) -> str:
    """Notification fallback text for the card (no user text beyond the ticket, escaped)."""
    return (
        f"Access request {request.id} from <@{request.requester_id}>: {request.role_id} on "
        f"{request.system_id} for {format_duration(timedelta(seconds=request.duration_seconds))} "
        f"({escape(request.ticket)})"
    )


def approval_card(
    policy: Policy, request: AccessRequest, session: AccessSession | None
) -> list[dict]:
    """The card in the approver channel, rendered from the current state of request and session."""
    system = policy.system(request.system_id)
    system_name = f"{escape(system.name)} (`{system.id}`)" if system else f"`{request.system_id}`"
    fields = [
        f"*Requester*\n<@{request.requester_id}>",
        f"*System*\n{system_name}",
        f"*Access*\n{escape(request.role_id)}",
        f"*Duration*\n{format_duration(timedelta(seconds=request.duration_seconds))}",
        f"*Ticket*\n{escape(request.ticket)}",
        f"*Request*\n`{request.id}`",
    ]
    blocks: list[Block] = [
        HeaderBlock(text="Production access request"),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]),
        _mrkdwn("*Reason*\n" + quote(request.reason)),
    ]
    blocks += _card_status(request, session)
    return _dicts(blocks)


def _card_status(request: AccessRequest, session: AccessSession | None) -> list[Block]:
    if request.state == RequestState.pending:
        return [
            ActionsBlock(
                block_id="decision",
                elements=[
                    ButtonElement(
                        text="Approve", action_id=Action.approve, value=request.id, style="primary"
                    ),
                    ButtonElement(
                        text="Deny", action_id=Action.deny, value=request.id, style="danger"
                    ),
                ],
            )
        ]
    decided = (
        f"<@{request.decided_by}> {slack_date(request.decided_at)}" if request.decided_at else ""
    )
    if request.state == RequestState.denied:
        return [_context(f":x: *Denied* by {decided}")]
    lines = [f":white_check_mark: *Approved* by {decided}"]
    extra: list[Block] = []
    if session is not None:
        lines.append(_session_status(session))
        if session.state == SessionState.grant_failed:
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


def _session_status(session: AccessSession) -> str:
    state = session.state
    if state == SessionState.granting:
        return ":hourglass_flowing_sand: Granting access…"
    if state == SessionState.grant_failed:
        error = escape(session.last_error or "unknown error")
        return f":warning: *Grant failed*: {error}. Nothing was granted."
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
    return "expired"


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(text, 3000))])


# --- messages to the requester -----------------------------------------------------------


def what(session_or_request: AccessSession | AccessRequest, policy: Policy) -> str:
    system = policy.system(session_or_request.system_id)
    name = escape(system.name) if system else session_or_request.system_id
    return f"*{escape(session_or_request.role_id)}* access to *{name}*"


def granted_message(policy: Policy, session: AccessSession) -> list[dict]:
    assert session.expires_at is not None
    return _dicts(
        [
            _mrkdwn(
                f":unlock: You have {what(session, policy)} until "
                f"{slack_date(session.expires_at)} (session `{session.id}`, ticket "
                f"{escape(session.request.ticket)}). It ends by itself; end it sooner when done."
            ),
            ActionsBlock(
                block_id="session",
                elements=[
                    ButtonElement(
                        text="End access now",
                        action_id=Action.end_session,
                        value=session.id,
                        style="danger",
                    )
                ],
            ),
        ]
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


def home_view(policy: Policy, requests: list[AccessRequest], sessions: list[AccessSession]) -> dict:
    """The Home tab: the person's open access (with End now) and pending requests."""
    blocks: list[Block] = [HeaderBlock(text="Your production access")]
    if not sessions and not requests:
        blocks.append(_mrkdwn("You have no open access and no pending requests."))
    for session in sessions[:40]:
        line = SectionBlock(text=MarkdownTextObject(text=session_line(session)))
        if session.state == SessionState.active:
            line.accessory = ButtonElement(
                text="End access now",
                action_id=Action.end_session,
                value=session.id,
                style="danger",
            )
        blocks.append(line)
    if requests:
        blocks.append(_mrkdwn(list_text(requests, [])))
    blocks.append(_context(help_text(policy)))
    return View(type="home", blocks=blocks[:100]).to_dict()
