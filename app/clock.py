"""The one clock of the application.

Every "now" goes through `now()`, so tests can move time (`clock.travel`) instead of sleeping,
and every stored time is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """The current time in UTC, shifted by whatever a test travelled."""
    return datetime.now(UTC) + _offset


def travel(delta: timedelta) -> None:
    """Move the application's clock forward (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)
