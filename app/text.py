"""Text helpers every layer uses: `short()` and `tail()` bound what a provider, a library or a
server said, and `redact()` takes every secret the bot knows out of it first.

One registry of secrets, one redaction: `register_secret()` is called for every configured
secret (the settings' secret fields when they are read, every `*_env` value a provider reads,
the password in a DSN), and `redact()` serves the log processor (app/logging.py), the check's
table (app/doctor.py) and, through `short()` and `tail()`, every provider error and note on its
way to a card, a DM, the audit trail or a log line.

Rules it relies on:
- Redaction comes before any cutting or flattening: a secret cut in half, or with its line
  breaks joined, would no longer be recognised.
- A registered value is replaced wherever it appears, longest first (a secret containing another
  is masked whole). Values shorter than MIN_SECRET_CHARS are not registered: replacing "abc" or
  "1234" everywhere would garble ordinary text (ids, times, words) and reveal where it stood.
  Such a value is masked only where a pattern below finds it (a DSN's password in URL or
  key=value form), and is otherwise shown as it is.
- Patterns mask what is a secret by its shape, registered or not: Slack tokens (xox…-, xapp-),
  the password in `scheme://user:password@`, and `password=…` in a key=value DSN.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MARKER = "[secret]"
MIN_SECRET_CHARS = 6

_SLACK_TOKEN = re.compile(r"xox[abposr]-[A-Za-z0-9-]+")
_APP_TOKEN = re.compile(r"xapp-[A-Za-z0-9-]+")
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):([^@\s]+)@")
# libpq's key=value form, password=value or password='quoted \' value'; in text at large an
# `&` ends it too (a URL's ?password=…&sslmode=…).
_KEYWORD_PASSWORD = re.compile(r"\b(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'&]+)", re.I)
_CONNINFO_PASSWORD = re.compile(r"\b(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']+)", re.I)

_secrets: tuple[str, ...] = ()  # longest first; replaced whole, so readers need no lock
_registering = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever `redact()` runs from now on (blank or shorter than
    MIN_SECRET_CHARS: not registered, see the module docstring)."""
    global _secrets
    if value is None or not value.strip() or len(value) < MIN_SECRET_CHARS:
        return
    with _registering:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def register_dsn(dsn: str | None) -> None:
    """Register the password inside a database DSN, as written and percent-decoded: URL form
    (`postgresql://user:pw@host/db`, or `?password=pw`) and key=value form (`password=pw`)."""
    if not dsn:
        return
    candidates: list[str] = []
    if "://" in dsn:
        # A malformed URL (ValueError) still has its password found by the pattern below.
        with contextlib.suppress(ValueError):
            parts = urlsplit(dsn)
            candidates += [parts.password or "", *parse_qs(parts.query).get("password", [])]
        match = _URL_PASSWORD.search(dsn)
        if match:
            candidates.append(match.group(2))
    else:
        for match in _CONNINFO_PASSWORD.finditer(dsn):
            raw = match.group(2)
            candidates += [raw, re.sub(r"\\(.)", r"\1", raw.strip("'"))]
    for candidate in candidates:
        register_secret(candidate)
        register_secret(unquote(candidate))


def redact(text: str) -> str:
    """`text` with every registered secret, Slack token and DSN password replaced by
    `[secret]`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MARKER)
    text = _SLACK_TOKEN.sub("xox?-" + MARKER, text)
    text = _APP_TOKEN.sub("xapp-" + MARKER, text)
    text = _URL_PASSWORD.sub(r"\1:" + MARKER + "@", text)
    return _KEYWORD_PASSWORD.sub(r"\1" + MARKER, text)


def short(text: Any, limit: int = 300) -> str:
    """Error or note text for cards, DMs, audit rows and logs: secrets redacted, one line,
    bounded."""
    flat = " ".join(redact(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tail(text: str, limit: int = 1000) -> str:
    """The end of a long output (where programs print their errors), secrets redacted, marked
    when cut."""
    text = redact(text).strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
