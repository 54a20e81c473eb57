"""The values a policy file is made of, each checked where it is read: durations (`30m`,
`1h30m`, at most a year), ticket patterns (RE2), email domains, and principals (a Slack user id
or a user group handle). Pure functions; nothing here knows the rest of the policy.

Ticket patterns are matched with RE2, in time linear in the ticket: with a pattern such as
`^([A-Z0-9]+)+-[0-9]+$`, Python's backtracking `re` tries 2^40 ways on a 40-character ticket
that does not match, inside the ack. A pattern RE2 cannot run (backreferences, lookaround) is
refused at start.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Annotated, Any

import re2
from pydantic import BeforeValidator

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNIT_SECONDS = (86400, 3600, 60, 1)
IDENTITY_FIELDS = frozenset({"email", "email_local", "slack_id"})
DURATION_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "2d", "7d")
#: No duration anyone types (a request, an extension, a policy limit, REVIEW_PERIOD) is longer.
LONGEST_DURATION = timedelta(days=365)


def parse_duration(text: object) -> timedelta:
    """'30s', '20m', '1h', '1h30m', '2d' → timedelta; anything else raises ValueError, a
    duration longer than LONGEST_DURATION too (timedelta itself overflows past 999999999 days,
    and Python refuses to read integers of more than 4300 digits)."""
    if isinstance(text, timedelta):
        return text
    given = str(text)
    shown = repr(given if len(given) <= 30 else given[:29] + "…")  # quoted, not echoed whole
    raw = given.strip().lower()
    match = _DURATION.match(raw)
    if not raw or not match:
        raise ValueError(f"invalid duration {shown} (use e.g. 30s, 20m, 1h, 1h30m, 2d)")
    too_long = f"duration {shown} is too long (at most {format_duration(LONGEST_DURATION)})"
    if any(len(part.lstrip("0")) > 12 for part in match.groups() if part):
        raise ValueError(too_long)
    parts = (int(part or 0) for part in match.groups())
    seconds = sum(count * unit for count, unit in zip(parts, _UNIT_SECONDS, strict=True))
    if seconds <= 0:
        raise ValueError(f"duration {shown} must be longer than zero")
    if seconds > LONGEST_DURATION.total_seconds():
        raise ValueError(too_long)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """timedelta → the shortest policy spelling: 90 minutes → '1h30m'."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is told once, as a PolicyError, not on stderr


@functools.lru_cache(maxsize=256)
def ticket_regex(pattern: str) -> Any:
    """The compiled RE2 form of a ticket pattern (re2.error when RE2 cannot run it)."""
    return re2.compile(pattern, _RE2_OPTIONS)


def _check_pattern(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            ticket_regex(pattern)
        except re2.error as exc:
            reason = exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc)
            raise ValueError(
                f"ticket_pattern is not a valid regular expression in RE2 syntax ({reason}); "
                "RE2 has no backreferences or lookaround"
            ) from None
    return pattern


TicketPattern = Annotated[str | None, BeforeValidator(_check_pattern)]

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _check_domains(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of domains, e.g. [example.com]")
    domains = [str(item).strip().lower().removeprefix("@") for item in value]
    for domain in domains:
        if not _DOMAIN.match(domain):
            raise ValueError(f"{domain!r} is not a domain name such as example.com")
    return domains


#: The email domains an identity derived from an email may come from (`bob@example.com`).
EmailDomains = Annotated[list[str] | None, BeforeValidator(_check_domains)]

_PRINCIPAL = re.compile(r"^(?:[UW][A-Z0-9]+|@[a-z0-9][a-z0-9._-]*)$")


def _check_principal(value: object) -> str:
    text = str(value).strip()
    if not _PRINCIPAL.match(text):
        raise ValueError(
            f"{value!r} is neither a Slack user id (U0123ABCD) nor a user group handle (@sre-leads)"
        )
    return text


#: Who: a Slack user id (`U0123ABCD`) or a user group handle (`@sre-leads`).
Principal = Annotated[str, BeforeValidator(_check_principal)]


def is_group(principal: str) -> bool:
    return principal.startswith("@")
