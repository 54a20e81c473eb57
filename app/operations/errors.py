"""Why an operation refused: the messages are shown to the person who asked, as they are."""

from __future__ import annotations


class OperationError(Exception):
    """Base class; str() is a sentence for the user."""


class NotFound(OperationError):
    pass


class NotAllowed(OperationError):
    """The person may not do this (never trust the payload: checked on every click)."""


class ConflictError(OperationError):
    """The row is no longer in the state this step starts from (a double click, a race)."""


class InvalidRequest(OperationError):
    """Bad input, one message per field: system, role, duration, ticket, reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
