"""What the approver channel is told when a new policy file is refused: that the policy in force
stays, which file (by its hash) and why. The reason (a `file:line: key: reason`, sessions a
dropped system still holds) is escaped once here, like every text that enters mrkdwn."""

from __future__ import annotations

from app.slack.text import escape, quote


def reload_refused(sha256: str, reason: str) -> str:
    """The message: one line saying what happened, then the reason as a quote."""
    return (
        f":warning: A new policy file (sha256 `{escape(sha256[:12])}…`) was refused; the policy "
        "in force stays until a corrected file is reloaded.\n" + quote(reason)
    )
