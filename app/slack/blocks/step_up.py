"""The message that answers an Approve (or a break-glass) that needs step-up: "Confirm with
<identity provider>" and a link button to the bot's /step-up/<token> page. Sent to the person
alone (ephemeral, or the ack of their command): the link is theirs and works once."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement

from app.operations.step_up import LINK_TTL, StepUpLink
from app.policy_values import format_duration
from app.slack.blocks.mrkdwn import as_dicts, section
from app.slack.ids import Action
from app.slack.text import escape


def confirm_text(link: StepUpLink, breakglass: bool = False) -> str:
    """The notification text (no link in it: the button carries the link)."""
    what = "breaking the glass" if breakglass else "your approval"
    return f"Confirm {what} of {link.request_id} with {link.provider}"


def confirm_blocks(link: StepUpLink, breakglass: bool = False) -> list[dict]:
    """The explanation and the link button."""
    what = (
        f"Break-glass `{link.request_id}` is granted"
        if breakglass
        else f"Your approval of `{link.request_id}` counts"
    )
    return as_dicts(
        [
            section(
                f":closed_lock_with_key: {what} once you log in again at "
                f"{escape(link.provider)} (with MFA). The link works once, for you, within "
                f"{format_duration(LINK_TTL)}."
            ),
            ActionsBlock(
                block_id="step_up",
                elements=[
                    ButtonElement(
                        text=f"Confirm with {link.provider}"[:75],
                        action_id=Action.step_up_open,
                        url=link.url,
                        style="primary",
                    )
                ],
            ),
        ]
    )
