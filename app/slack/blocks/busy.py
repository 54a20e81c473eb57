"""What is said about a request the approvers leave waiting: the `notify` mention when its card
is posted, the reminder in the card's thread, the escalation (in the escalation channel and a
line in the thread), the requester's DMs about both, and the note on their Home tab.

The requester is told that the approvers were reminded or where it was escalated, never who
stands in for whom. Mentions come in already built (`people.mention_list`); everything else
that enters mrkdwn is escaped here (app/slack/text.py).
"""

from __future__ import annotations

from app.models import AccessRequest
from app.operations.waiting_request import waited
from app.policy import Policy
from app.slack.blocks.mrkdwn import code, what
from app.slack.text import escape, slack_date


def who_is_awaited(awaited: list[tuple[str, str | None]], mentions: dict[str, str]) -> str:
    """The people a reminder names, as mentions: "<@lea> for <@tom>" for a delegate standing
    in. `mentions`: principal → mention (a group's <!subteam^…>, else its handle)."""
    parts = []
    for person, instead_of in awaited:
        shown = mentions.get(person, f"<@{person}>")
        parts.append(f"{shown} for <@{instead_of}>" if instead_of else shown)
    return ", ".join(parts)


def notify_line(policy: Policy, request: AccessRequest, mentions: str) -> str:
    """In the card's thread as it is posted: the `notify` people hear of the request."""
    return (
        f":information_source: For your information, {mentions}: <@{request.requester_id}> "
        f"asks for {what(request, policy)} (ticket {escape(request.ticket)}). Only the "
        "approvers can decide it."
    )


def reminder(policy: Policy, request: AccessRequest, awaited: str) -> str:
    """In the card's thread: the approvers who have not approved yet are mentioned again (the
    requester is not: they hear of it by DM)."""
    at = request.approvers_reminded_at or request.created_at
    return (
        f":bell: Still waiting after {waited(request, at)}: {awaited or 'the approvers'}, please "
        f"approve or deny this request for {what(request, policy)} "
        f"(ticket {escape(request.ticket)}) on the card."
    )


def escalation(policy: Policy, request: AccessRequest, approvers: str, card: str) -> str:
    """In the escalation channel: the request has waited too long. `card`: a link to it (or
    where it is)."""
    at = request.escalated_at or request.created_at
    return (
        f":rotating_light: *Waiting for approval for {waited(request, at)}* — "
        f"<@{request.requester_id}> asks for {what(request, policy)} ({code(request.id)}, "
        f"ticket {escape(request.ticket)}). Approvers: {approvers or 'none left'}. "
        f"The card: {card}."
    )


def escalated_in_thread(request: AccessRequest) -> str:
    """In the card's thread: the request went to the escalation channel."""
    at = request.escalated_at or request.created_at
    return f":rotating_light: Escalated to <#{request.escalated_to}> after {waited(request, at)}."


def reminded_dm(policy: Policy, request: AccessRequest) -> str:
    """To the requester: still waiting; the approvers were reminded."""
    return (
        f":hourglass_flowing_sand: Your request {code(request.id)} for {what(request, policy)} "
        "is still waiting; the approvers were reminded."
    )


def escalated_dm(policy: Policy, request: AccessRequest) -> str:
    """To the requester: the request was escalated, and where to."""
    at = request.escalated_at or request.created_at
    return (
        f":rotating_light: Your request {code(request.id)} for {what(request, policy)} has "
        f"waited {waited(request, at)}; it was escalated to <#{request.escalated_to}>."
    )


def waiting_note(request: AccessRequest) -> str:
    """After a pending request on its requester's Home tab: what was done about the wait."""
    note = ""
    if request.approvers_reminded_at is not None:
        note += f" · approvers reminded {slack_date(request.approvers_reminded_at)}"
    if request.escalated_at is not None and request.escalated_to:
        note += f" · escalated to <#{request.escalated_to}>"
    return note
