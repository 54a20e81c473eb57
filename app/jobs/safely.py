"""One item of a timer's batch at a time: a bad one must not stop the others. Its log lines
carry its ids; a refusal (an operation that found nothing to do) is noted, anything else is
logged with its traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from app.logging import bound
from app.operations.errors import OperationError

log = structlog.get_logger(__name__)
T = TypeVar("T")


def safely(job: str, call: Callable[[], T], **ids: str) -> T | None:
    """`call()`, or None when it failed (logged as `<job>_skipped` / `<job>_failed`)."""
    with bound(**ids):
        try:
            return call()
        except OperationError as exc:
            log.info(f"{job}_skipped", reason=str(exc))
        except Exception:
            log.exception(f"{job}_failed")
        return None
