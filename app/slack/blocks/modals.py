"""The modals: the request form (rebuilt as a system, then a role, is chosen), the closeout
note, the Deny reason, and Extend. Field limits are the operations' own (TICKET_MAX,
REASON_MAX, DENY_REASON_MAX), so a modal never accepts what the operation refuses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from app.models import AccessRequest, AccessSession
from app.operations.decide_request import DENY_REASON_MAX
from app.operations.request_access import REASON_MAX, TICKET_MAX
from app.policy import Policy, System
from app.policy_values import format_duration
from app.slack.blocks.mrkdwn import section, what
from app.slack.ids import Action, Callback
from app.slack.ids import Block as B
from app.slack.text import escape, slack_date, truncate


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
            blocks=[section("You are not on the requesters list of any system.")],
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
    """The closeout note: what changed during the access, and follow-ups."""
    view = View(
        type="modal",
        callback_id=Callback.closeout_modal,
        private_metadata=session.id,
        title="Closeout note",
        submit="Save",
        close="Later",
        blocks=[
            section(
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
    """Deny, with an optional reason the requester sees."""
    return View(
        type="modal",
        callback_id=Callback.deny_modal,
        private_metadata=request.id,
        title="Deny request",
        submit="Deny",
        close="Back",
        blocks=[
            section(
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
        section(
            f"Your {what(session, policy)} (`{session.id}`) ends "
            f"{slack_date(session.expires_at) if session.expires_at else 'soon'}. "
            "An extension goes to the approvers like a new request; the end moves only when "
            "it is approved."
        )
    ]
    choices = [c for c in policy.duration_choices_up_to(room)]
    if not choices:
        blocks.append(section("This access already has the longest time its role allows."))
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
