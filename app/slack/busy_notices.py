"""How the notices about busy approvers reach Slack (SlackNotifier's methods of the same names):
the reminder in the card's thread, the escalation in the escalation channel, the requester's
DMs about both, and a delegation started or ended, told to both people.

They are the SlackNotifier's, kept apart to keep notifier.py readable: each takes the notifier
and uses its own ways to load rows, post in a thread, DM and republish Home tabs. As there, each
runs after the commit and re-reads the rows; an error it raises keeps the notice to be sent
again, and a notice sent again says the same (the times said are the ones recorded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from app.db import reading
from app.models import AccessRequest
from app.models_features import Delegation
from app.operations import people, waiting_request
from app.policy_values import is_group
from app.slack.blocks import busy
from app.slack.blocks import delegation as blocks

if TYPE_CHECKING:  # the notifier calls these; they use its helpers
    from app.slack.notifier import SlackNotifier


def approvers_reminded(notifier: SlackNotifier, request: AccessRequest) -> None:
    """The approvers who have not approved, mentioned in the card's thread (a delegate "for"
    whom they stand in); the requester is told they were, and sees it on their Home tab."""
    request = notifier._load(request.id)[0] or request
    awaited = waiting_request.awaited(notifier._ctx, request)
    groups = [who for who, _ in awaited if is_group(who)]
    shown = dict(zip(groups, people.mention_list(notifier._ctx, groups), strict=True))
    text = busy.reminder(notifier.policy, request, busy.who_is_awaited(awaited, shown))
    notifier._thread(request, text)
    notifier._dm(request.requester_id, busy.reminded_dm(notifier.policy, request))
    notifier._homes_of(request)


def request_escalated(notifier: SlackNotifier, request: AccessRequest) -> None:
    """The request in the escalation channel, with a link to its card; a line in the card's
    thread; the requester is told where it went, and sees it on their Home tab."""
    request = notifier._load(request.id)[0] or request
    if not request.escalated_to:
        return
    approvers = notifier._approvers(request)
    text = busy.escalation(notifier.policy, request, approvers, card_link(notifier, request))
    notifier.client.chat_postMessage(channel=request.escalated_to, text=text)
    notifier._thread(request, busy.escalated_in_thread(request))
    notifier._dm(request.requester_id, busy.escalated_dm(notifier.policy, request))
    notifier._homes_of(request)


def card_link(notifier: SlackNotifier, request: AccessRequest) -> str:
    """The card as a link (Slack's permalink), else the channel it is in."""
    if not (request.card_channel and request.card_ts):
        return "not posted yet"
    channel = f"<#{request.card_channel}>"
    try:
        answer = notifier.client.chat_getPermalink(
            channel=request.card_channel, message_ts=request.card_ts
        )
    except SlackApiError:
        return f"in {channel}"
    permalink = answer.get("permalink")
    # Slack's own https URL: it carries no <, > or |, and nothing typed by anyone.
    if (
        isinstance(permalink, str)
        and permalink.startswith("https://")
        and not set("<>|") & set(permalink)
    ):
        return f"<{permalink}|open it> in {channel}"
    return f"in {channel}"


def delegation_changed(notifier: SlackNotifier, delegation_id: str) -> None:
    """The delegator and the delegate hear that it started or ended; their Home tabs too."""
    with reading(notifier.db) as db:
        row = db.get(Delegation, delegation_id)
    if row is None:
        return
    for user in (row.from_id, row.to_id):
        notifier._dm(user, blocks.changed_dm(row, user))
    with notifier._viewers_lock:
        viewers = set(notifier._viewers)
    notifier._publish_homes([u for u in (row.from_id, row.to_id) if u in viewers])
