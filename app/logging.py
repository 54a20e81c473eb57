"""structlog, set up once: console lines in development, JSON lines in production. `auto` (the
default) means JSON when stderr is not a terminal: a container, systemd or a pipe reads lines,
a person at a terminal reads the console format.

Every line carries the ids of the work it belongs to: `bound(request_id=…, session_id=…)` binds
them (structlog contextvars) for a block, and work handed to another thread takes them along
when it runs in a copy of the caller's context (AfterAck, the notice lanes). Library lines
(Bolt, slack_sdk, APScheduler, gunicorn, Alembic) go through the same processors, so they are
JSON lines with the same ids too.

A processor masks secrets in every event (Slack tokens, the signing secret, provider secrets,
passwords in DSNs), whatever key they hide under, so no log line carries one: a value under a
key that names a secret is dropped whole, every other string goes through app.text's
`redact()`, the one registry of secrets that cards, DMs and audit rows are redacted with too.

One writer: structlog's events go through the standard library's logging (one logger,
`prod_access`) to the same single handler as the libraries' records. It renders each line and
writes it, newline included, in one `write` while holding its lock (`logging.StreamHandler`),
so lines written by many threads at once never share a line or split one. (Two writers, as
structlog's PrintLogger beside a StreamHandler, glued lines: print writes the text and the
newline apart, and a long line is passed on to the stream before its newline comes.)
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

from app.models import AccessRequest, AccessSession
from app.text import redact, register_secret

# The names this module had before app.text held the one registry of secrets: the same
# registry and the same redaction under them.
mask = redact
__all__ = [
    "bound",
    "drop_secrets",
    "ids_of",
    "mask",
    "register_secret",
    "setup_logging",
    "wants_json",
]

_SECRET_KEYS = re.compile(r"(token|secret|password|dsn|authorization)", re.I)
#: Request and session ids as app.operations.common.new_id writes them: R-7K3Q9X2M, S-4M8D2QXA.
_ROW_ID = re.compile(r"^([RS])-[0-9A-Z]{8}$")
#: The standard library logger every structlog event is handed to (its level is LOG_LEVEL; the
#: libraries' loggers stay at WARNING unless LOG_LEVEL is debug).
APP_LOGGER = "prod_access"


def drop_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event[key] = "[secret]"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


def ids_of(*values: object) -> dict[str, str]:
    """The request and session ids among `values` (rows, or id strings such as a button's
    value; a session names its request too), the first of each kind, for `bound(**…)`."""
    ids: dict[str, str] = {}
    for value in values:
        if isinstance(value, AccessSession):
            ids.setdefault("session_id", value.id)
            ids.setdefault("request_id", value.request_id)
        elif isinstance(value, AccessRequest):
            ids.setdefault("request_id", value.id)
        elif isinstance(value, str) and (match := _ROW_ID.match(value)):
            ids.setdefault("request_id" if match[1] == "R" else "session_id", value)
    return ids


@contextmanager
def bound(**ids: object) -> Iterator[None]:
    """Add these ids (None ones left out) to every log line written in this block, by this
    thread and by work it hands on in a copy of its context (`contextvars.copy_context()`)."""
    present = {key: value for key, value in ids.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield


def wants_json(fmt: str, stream: TextIO | None = None) -> bool:
    """LOG_FORMAT: `json`, `console`, or `auto` (JSON unless the stream, by default stderr, is a
    terminal)."""
    return fmt == "json" or (fmt == "auto" and not _is_terminal(stream or sys.stderr))


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _app_logger(*_names: Any) -> logging.Logger:
    return logging.getLogger(APP_LOGGER)


def setup_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Every log line, the bot's and the libraries', to `stream` (default: stderr) through one
    handler, formatted and masked alike, at LOG_LEVEL for the bot's own events."""
    out = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if wants_json(fmt, out)
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(out))
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    threshold = getattr(logging, level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_app_logger,
        cache_logger_on_first_use=False,
    )
    # Library logs (Bolt, slack_sdk, APScheduler, gunicorn, Alembic) become the same lines:
    # same format, same bound ids, same masking. Masking comes after the traceback is rendered
    # into the event, so a secret in an exception's message is masked too.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                drop_secrets,
                renderer,
            ],
        )
    )
    app = logging.getLogger(APP_LOGGER)
    app.handlers[:] = []  # its lines reach the root's one handler, and nothing else
    app.propagate = True
    app.setLevel(threshold)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if level != "debug" else logging.DEBUG)
