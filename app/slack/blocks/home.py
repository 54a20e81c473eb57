"""The App Home tab: one person's open access, pending requests, what waits for their approval
or retro-review, their recent history, and the help. The caller reads the rows (`Home`);
`home_view` only renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from app.models import AccessRequest, AccessSession, RequestKind, RequestState, Route, SessionState
from app.models_features import Delegation
from app.policy import Policy, System
from app.policy_values import format_duration
from app.slack.blocks.answers import help_text, session_line
from app.slack.blocks.busy import waiting_note
from app.slack.blocks.card import decision_buttons, review_buttons
from app.slack.blocks.delegation import home_section
from app.slack.blocks.dm import session_buttons
from app.slack.blocks.mrkdwn import context, section
from app.slack.ids import Action
from app.slack.text import escape, slack_date


@dataclass
class Home:
    """What one person's Home tab shows (read by the caller, rendered by `home_view`)."""

    sessions: list[AccessSession] = field(default_factory=list)  # my open access
    requests: list[AccessRequest] = field(default_factory=list)  # my pending requests
    to_decide: list[AccessRequest] = field(default_factory=list)  # waiting for me to approve
    to_review: list[AccessRequest] = field(default_factory=list)  # break-glass to review
    history: list[AccessRequest] = field(default_factory=list)  # my last decided requests
    systems: list[System] = field(default_factory=list)  # what I may request
    delegations: list[Delegation] = field(default_factory=list)  # handed on or taken over
    approves: bool = False  # I approve some system (so I may hand my approvals on)
    user_id: str = ""  # whose Home tab it is


def home_view(policy: Policy, home: Home, now: datetime) -> dict:
    """The Home tab: my open access (End now / Extend), my pending requests (Cancel), for
    approvers the requests waiting for them (Approve / Deny) and break-glass to review, and my
    recent history. Republished on every change, so "time left" is as of the last change."""
    blocks: list[Block] = [HeaderBlock(text="Your production access")]
    if home.sessions:
        for session in home.sessions[:15]:
            blocks.append(section(session_line(session, now)))
            if session.state == SessionState.active:
                blocks.append(session_buttons(session))
    else:
        blocks.append(section("You have no open access."))
    if home.requests:
        blocks += [DividerBlock(), HeaderBlock(text="Your pending requests")]
        for request in home.requests[:10]:
            line = SectionBlock(
                text=MarkdownTextObject(text=request_line(request) + waiting_note(request))
            )
            line.accessory = ButtonElement(
                text="Cancel request", action_id=Action.cancel_request, value=request.id
            )
            blocks.append(line)
    if home.to_decide:
        blocks += [DividerBlock(), HeaderBlock(text="Waiting for your approval")]
        for request in home.to_decide[:10]:
            blocks.append(section(f"<@{request.requester_id}>: {request_line(request)}"))
            blocks.append(decision_buttons(request, f"decide:{request.id}"))
    if home.to_review:
        blocks += [DividerBlock(), HeaderBlock(text="Break-glass to review")]
        for request in home.to_review[:5]:
            blocks.append(section(f"<@{request.requester_id}>: {request_line(request)}"))
            blocks.append(review_buttons(request, f"review:{request.id}"))
    blocks += home_section(home.user_id, home.delegations, home.approves)
    if home.history:
        blocks += [DividerBlock(), HeaderBlock(text="Recent history")]
        lines = [f"• {request_line(r)}: {history_outcome(r)}" for r in home.history[:10]]
        blocks.append(section("\n".join(lines)))
    blocks += [DividerBlock(), context(help_text(policy, home.systems))]
    return View(type="home", blocks=blocks[:100]).to_dict()


def request_line(request: AccessRequest) -> str:
    """One request in a line: what, how long (an extension: how much more), ticket, when."""
    duration = format_duration(timedelta(seconds=request.duration_seconds))
    kind = "extension +" if request.kind == RequestKind.extension else ""
    return (
        f"`{request.id}` {escape(request.role_id)} on {escape(request.system_id)}, "
        f"{kind}{duration}, ticket {escape(request.ticket)}, asked {slack_date(request.created_at)}"
    )


def history_outcome(request: AccessRequest) -> str:
    """How a past request ended, in a word (a break-glass says so)."""
    if request.state == RequestState.approved:
        return "break-glass" if request.route == Route.breakglass else "approved"
    return request.state.value
