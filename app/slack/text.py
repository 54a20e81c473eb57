"""Text for mrkdwn: the one escaping helper, Slack date tokens, and safe truncation."""

from __future__ import annotations

from datetime import datetime


def escape(text: str) -> str:
    """Make user text inert in mrkdwn: no <!channel>, no <http://evil|links>, no fake mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Slack sends slash-command text with &, <, > escaped; store what the person typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


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
