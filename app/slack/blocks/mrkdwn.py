"""The pieces every surface is built from: a mrkdwn section, a context line, inline code, and
the words for an access ("*write* production access to *Orders API*").

The escaping rule (app/slack/text.py): every text that enters mrkdwn in blocks/ (what people
typed, policy names, provider errors, ids, the static usage) goes through `text.escape` once
(via `escape`, `quote`, `code`); mentions, channels and dates are added around it on purpose.
`plain_text` objects (headers, buttons, options, modal titles) are shown as they are, and
slack_sdk's models enforce Slack's length limits."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from app.models import AccessRequest, AccessSession
from app.policy import Policy, System
from app.slack.text import escape, truncate


def section(text: str) -> SectionBlock:
    """A section of mrkdwn, cut to Slack's 3000 characters."""
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, 3000)))


def context(text: str) -> ContextBlock:
    """A context line (small grey mrkdwn), cut to Slack's 3000 characters."""
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(text, 3000))])


def as_dicts(blocks: list[Block]) -> list[dict]:
    """Blocks as the JSON a message's `blocks` takes."""
    return [block.to_dict() for block in blocks]


def code(text: str) -> str:
    """Text as inline code; a backtick in it (an odd email) cannot end the span early."""
    return "`" + escape(text.replace("`", "'")) + "`"


def access_kind(system: System | None) -> str:
    """The kind of access, by the system's tier: "production access" or "staging access"."""
    return f"{system.tier} access" if system is not None else "access"


def what(session_or_request: AccessSession | AccessRequest, policy: Policy) -> str:
    """What the access is, as mrkdwn: "*write* production access to *Orders API*" (and
    "staging access" on a staging-tier system)."""
    system = policy.system(session_or_request.system_id)
    name = escape(system.name if system else session_or_request.system_id)
    return f"*{escape(session_or_request.role_id)}* {access_kind(system)} to *{name}*"
