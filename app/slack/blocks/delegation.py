"""Delegations on Slack's surfaces: an approval given for someone ("<@lea> for <@tom>", on the
card and in its thread, never in the requester's DM), the Home tab's "Out of office" section
(what you handed on or took over, End, and the button to hand your approvals on) and its
modal (the approver to hand them to, and the last day).

Dates are shown with `slack_date` (each reader's own time zone); nothing here is typed text.
"""

from __future__ import annotations

from datetime import date, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DatePickerElement,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    SectionBlock,
    UserSelectElement,
)
from slack_sdk.models.views import View

from app.models import AccessRequest, Approval
from app.models_features import Delegation
from app.operations.delegation import MAX_DELEGATION
from app.slack.blocks.mrkdwn import context, section
from app.slack.ids import Action, Callback
from app.slack.ids import Block as B
from app.slack.text import slack_date


def approver(approval: Approval) -> str:
    """One approval as mentions: "<@lea>", or "<@lea> for <@tom>" for a delegate's."""
    shown = f"<@{approval.approver_id}>"
    return f"{shown} for <@{approval.on_behalf_of}>" if approval.on_behalf_of else shown


def approvers_shown(request: AccessRequest) -> str:
    """Who approved, for the card and its thread (the decider when no approval was counted)."""
    return ", ".join(approver(a) for a in request.approvals) or f"<@{request.decided_by}>"


def approval_by(request: AccessRequest, approver_id: str) -> str:
    """The approval `approver_id` gave on this request, as `approver` shows it."""
    given = next((a for a in request.approvals if a.approver_id == approver_id), None)
    return approver(given) if given is not None else f"<@{approver_id}>"


def stand_ins_line(stand_ins: dict[str, str]) -> str:
    """For a pending card's approver line: who decides for whom while they are away."""
    return ", ".join(f"<@{to}> for <@{away}>" for away, to in stand_ins.items())


def home_section(user_id: str, delegations: list[Delegation], approves: bool) -> list[Block]:
    """The Home tab's "Out of office" section, for an approver or a delegate."""
    if not (approves or delegations):
        return []
    blocks: list[Block] = [DividerBlock(), HeaderBlock(text="Out of office")]
    for d in delegations[:10]:
        if d.from_id == user_id:
            text = f"You handed your approvals to <@{d.to_id}> until {slack_date(d.ends_at)}."
        else:
            text = f"<@{d.from_id}> handed you their approvals until {slack_date(d.ends_at)}."
        line = SectionBlock(text=MarkdownTextObject(text=text))
        line.accessory = ButtonElement(text="End", action_id=Action.delegation_end, value=d.id)
        blocks.append(line)
    if approves:
        blocks.append(
            ActionsBlock(
                block_id="delegate",
                elements=[
                    ButtonElement(
                        text="Hand my approvals to someone", action_id=Action.delegate_open
                    )
                ],
            )
        )
    return blocks


def delegate_modal(today: date) -> dict:
    """Choose the approver to hand your approvals to, and the last day (through its end, UTC)."""
    return View(
        type="modal",
        callback_id=Callback.delegate_modal,
        title="Out of office",
        submit="Hand them on",
        close="Cancel",
        blocks=[
            section(
                "While you are away, the approver you choose decides the requests you would "
                "decide, on the systems you both approve. Cards show it as theirs *for* you."
            ),
            InputBlock(
                block_id=B.delegate_to,
                label="Hand my approvals to",
                element=UserSelectElement(action_id=Action.delegate_to_input),
            ),
            InputBlock(
                block_id=B.delegate_until,
                label="Until (the last day, included)",
                element=DatePickerElement(
                    action_id=Action.delegate_until_input,
                    initial_date=(today + timedelta(days=7)).isoformat(),
                ),
            ),
            context(f"At most {MAX_DELEGATION.days} days. You can end it earlier on this tab."),
        ],
    ).to_dict()


def changed_dm(delegation: Delegation, user_id: str) -> str:
    """To the delegator and to the delegate: a delegation started, or ended."""
    until = slack_date(delegation.ends_at)
    mine = delegation.from_id == user_id
    if delegation.ended_at is not None:
        ended = slack_date(delegation.ended_at)
        if mine:
            return (
                f":leftwards_arrow_with_hook: Your approvals are yours again ({ended}): "
                f"<@{delegation.to_id}> no longer decides for you."
            )
        return (
            f":leftwards_arrow_with_hook: You no longer decide for <@{delegation.from_id}> "
            f"({ended})."
        )
    if mine:
        return (
            f":palm_tree: <@{delegation.to_id}> decides the requests you would decide until "
            f"{until}, on the systems you both approve. End it on your Home tab."
        )
    return (
        f":palm_tree: <@{delegation.from_id}> handed you their approvals until {until}: you may "
        "decide the requests they would decide, on the systems you both approve. Cards show "
        f"your approvals as yours for <@{delegation.from_id}>."
    )
