"""Text for mrkdwn: the one escaping helper, refusals with their mentions, Slack date tokens,
and safe truncation.

Slack reads every `<…>` in mrkdwn as a control sequence and `&…;` as an entity, so the rule is:

- All text is plain until it enters mrkdwn, and it is escaped (`escape`) exactly once, where it
  does: what people typed, policy names and descriptions, provider errors, and the bot's own
  static texts (a usage line's `<system>` too). Escaping twice shows `&lt;` to the reader.
- The control sequences the bot means are added around text already escaped, never passed
  through `escape`: mentions `<@U…>` (and `<!subteam^S…>` for a user group), channels `<#C…>`,
  dates (`slack_date`). The bot never writes `<!here>`, `<!channel>` or `<!everyone>`.
- Refusals: an operation's OperationError is a plain-text sentence (the CLI prints it, logs keep
  it, a modal shows it under a field as plain text) that may name people with mentions it lists
  in `exc.mentions`. `with_mentions` makes it mrkdwn: all of it escaped, then those listed
  mentions put back. Anything else in it (what was typed, a provider's answer, a policy name)
  stays text, even when it looks like a mention; a refusal that quotes what someone typed
  therefore lists no mentions unless it names those people itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

#: The mentions a refusal may name on purpose: a person or a user group, nothing else.
MENTION = re.compile(r"<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>")


def escape(text: str) -> str:
    """Make text inert in mrkdwn: no <!channel>, no <http://evil|links>, no fake mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Slack sends slash-command text with &, <, > escaped; store what the person typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def with_mentions(text: str, mentions: Iterable[str] = ()) -> str:
    """A plain-text sentence as mrkdwn: escaped, except the `mentions` its author put in on
    purpose (entries that are not a mention of a person or a group stay escaped)."""
    shown = escape(text)
    for mention in dict.fromkeys(mentions):
        if MENTION.fullmatch(mention):
            shown = shown.replace(escape(mention), mention)
    return shown


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int = 2800) -> str:
    """User text as an escaped mrkdwn block quote, cut to fit a section block."""
    body = escape(truncate(text, limit))
    return "\n".join("> " + line for line in body.splitlines()) or "> "


def slack_date(moment: datetime, style: str = "{date_short_pretty} at {time}") -> str:
    """Shown in each reader's own time zone; the fallback is UTC ISO 8601."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{style}|{fallback}>"
