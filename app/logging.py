"""structlog, set up once: console lines in development, JSON lines in production.

A processor masks secrets in every event (Slack tokens, the signing secret, passwords in DSNs),
whatever key they hide under, so no log line carries one.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"(?<=://)([^:/@\s]+):([^@\s]+)@"),
]
_SECRET_KEYS = re.compile(r"(token|secret|password|dsn|authorization)", re.I)
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this exact value (e.g. the signing secret) wherever it appears in a log event."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def mask(text: str) -> str:
    for secret in _extra_secrets:
        text = text.replace(secret, "[secret]")
    text = _SECRET_PATTERNS[0].sub("xox?-[secret]", text)
    text = _SECRET_PATTERNS[1].sub("xapp-[secret]", text)
    return _SECRET_PATTERNS[2].sub(r"\1:[secret]@", text)


def drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event[key] = "[secret]"
        elif isinstance(value, str):
            event[key] = mask(value)
    return event


def setup_logging(fmt: str = "console", level: str = "info") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        drop_secrets,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Library logs (Bolt, slack_sdk, APScheduler, gunicorn) go through the same masking.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if level != "debug" else logging.DEBUG)


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))
