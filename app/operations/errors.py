"""Why an operation refused: the messages are shown to the person who asked, as they are.

A message is plain text. Where it names people with Slack mentions (`<@U…>`, `<!subteam^S…>`),
the operation lists those in `mentions`; Slack's mrkdwn shows only the listed ones as mentions
and everything else in the sentence as text (app/slack/text.py, `with_mentions`).
"""

from __future__ import annotations

from collections.abc import Iterable


class OperationError(Exception):
    """Base class; str() is a sentence for the user, `mentions` the people it names."""

    def __init__(self, message: str, *, mentions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.mentions = tuple(mentions)


class NotFound(OperationError):
    pass


class NotAllowed(OperationError):
    """The person may not do this (never trust the payload: checked on every click)."""


class StepUpRequired(NotAllowed):
    """The role needs a fresh login at the identity provider to confirm this (step-up)."""


class ConflictError(OperationError):
    """The row is no longer in the state this step starts from (a double click, a race)."""


class InvalidRequest(OperationError):
    """Bad input, one message per field: system, role, duration, ticket, reason."""

    def __init__(self, errors: dict[str, str], *, mentions: Iterable[str] = ()) -> None:
        super().__init__("; ".join(errors.values()), mentions=mentions)
        self.errors = errors
