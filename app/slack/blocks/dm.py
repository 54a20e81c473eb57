"""Messages to the requester, by DM: the request is waiting (or could not be posted), how it
was decided, the access is granted (with End now / Extend), the grant failed, the access has
ended (with the closeout prompt and its reminders), a break-glass was flagged, the closeout
note is saved. A message with blocks also has a short `text`: the notification's fallback."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement

from app.models import AccessRequest, AccessSession, RequestKind, RequestState, Route, SessionState
from app.policy import Policy
from app.policy_values import format_duration
from app.slack.blocks.card import approved_by, decided_line, end_reason_text
from app.slack.blocks.mrkdwn import access_kind, as_dicts, code, section, what
from app.slack.ids import Action
from app.slack.text import escape, slack_date


def breakglass_granting(request: AccessRequest, access: str = "") -> str:
    """What a break-glass requester is told (the slash command's answer, the DM): granted now,
    reviewed after. `access`: what is granted, as mrkdwn (see `what`), if the answer names it."""
    granting = f"granting {access} now" if access else "granting now"
    return (
        f":rotating_light: Break-glass {code(request.id)}: {granting}. The approvers are told "
        "and will review it."
    )


def card_not_posted(request: AccessRequest, channel: str, error: str) -> str:
    """Slack refused the card (`error`: its answer): nobody has seen the request."""
    return (
        f":warning: Your request `{request.id}` could not be posted to <#{channel}> "
        f"({escape(error)}). Nobody has seen it yet; ask an admin to invite the bot to that "
        "channel."
    )


def waiting_for_approval(policy: Policy, request: AccessRequest, channel: str) -> str:
    """The card is posted in `channel`; the approvers decide there."""
    return (
        f"Your request `{request.id}` for {what(request, policy)} "
        f"(ticket {escape(request.ticket)}) is waiting for approval in <#{channel}>."
    )


def denial_reason(request: AccessRequest) -> str:
    """ " Reason: …" (the denier's words, escaped) for the end of a denial, or nothing."""
    return f" Reason: {escape(request.decision_note)}" if request.decision_note else ""


def decision(policy: Policy, request: AccessRequest, session: AccessSession | None) -> str | None:
    """How the request was decided, for the requester (None for their own cancel). `session`:
    the one an extension extends, with its new end."""
    access = what(request, policy)
    if request.state == RequestState.denied:
        return (
            f":x: <@{request.decided_by}> denied your request `{request.id}` for {access}."
            + denial_reason(request)
        )
    if request.state == RequestState.lapsed:
        return (
            f":hourglass: Your request `{request.id}` for {access} lapsed: "
            f"{escape(request.decision_note or 'nobody decided in time')}. Ask again if you "
            "still need it."
        )
    if request.state == RequestState.cancelled:
        return None
    if request.kind == RequestKind.extension and session and session.expires_at:
        ends = slack_date(session.expires_at)
        return f":stopwatch: Extension `{request.id}` approved: your {access} now ends {ends}."
    if request.route == Route.breakglass:
        return breakglass_granting(request, access)
    if request.route != Route.approvers:
        return f"{decided_line(request)}: request `{request.id}`. Granting {access}…"
    return (
        f":white_check_mark: {approved_by(request)} approved your request `{request.id}`. "
        f"Granting {access}…"
    )


def breakglass_flagged(request: AccessRequest) -> str:
    """A reviewer flagged the requester's break-glass access: it is ended now."""
    return (
        f":triangular_flag_on_post: <@{request.reviewed_by}> flagged your break-glass "
        f"access `{request.id}`; it is being ended now."
    )


def granted_text(policy: Policy, session: AccessSession) -> str:
    """The notification's fallback for `granted_message`."""
    assert session.expires_at is not None
    kind = access_kind(policy.system(session.system_id))
    return (
        f"You have {escape(session.role_id)} {kind} to {escape(session.system_id)} until "
        f"{slack_date(session.expires_at)}."
    )


def granted_message(policy: Policy, session: AccessSession) -> list[dict]:
    """The access is in place until its end, with End now and Extend."""
    assert session.expires_at is not None
    return as_dicts(
        [
            section(
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


def grant_failed(policy: Policy, session: AccessSession) -> str:
    """The grant failed (nothing granted, retry within the window) or its outcome is unknown
    (checked again, revoked if found)."""
    error = escape(session.last_error or "unknown error")
    access = what(session, policy)
    if session.state == SessionState.grant_unknown:
        return (
            f":warning: Granting {access} failed ({error}) and the system could not say "
            "whether it is in place. It is being checked again and revoked if found; ask "
            "for it again if you still need it."
        )
    system = policy.system(session.system_id)
    window = format_duration(policy.retry_within(system)) if system else None
    return f":warning: Granting {access} failed: {error}. Nothing was granted; you or an " + (
        f"approver can retry from the card within {window} of the approval."
        if window
        else "approver can ask again."
    )


def ended_text(policy: Policy, session: AccessSession) -> str:
    """The notification's fallback for the first `closeout_prompt`."""
    kind = access_kind(policy.system(session.system_id))
    return f"Your {kind} {session.id} has ended. Please write a closeout note."


def reminder_text(session: AccessSession) -> str:
    """The notification's fallback for a reminder's `closeout_prompt`."""
    return f"Reminder: the closeout note for {session.id} is missing."


def closeout_prompt(policy: Policy, session: AccessSession, reminder: int = 0) -> list[dict]:
    """The access has ended (or, `reminder` > 0, the note is still missing): write the note."""
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
    return as_dicts(
        [
            section(head),
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


def closeout_saved(session: AccessSession) -> str:
    """The requester's closeout note is stored (and shown in the card's thread)."""
    return f":memo: Thanks, your closeout note for `{session.id}` is saved."
