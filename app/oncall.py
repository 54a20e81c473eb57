"""Who is on call right now, from PagerDuty: the answer behind a role's `auto_approve_oncall`.

One call, PagerDuty REST API v2 `GET /oncalls` with `schedule_ids[]=<id>` and
`include[]=users` (so each entry's user carries its `email`), following the classic pagination
(`limit`, `offset`, `more`). `since` and `until` are left out: PagerDuty defaults both to the
current time, which is exactly "on call now". `earliest=true` is not used: it answers the next
on-call per escalation level, not the present one.

Rules it keeps:
- only entries whose `schedule.id` is the schedule asked about count, so a server that ignored
  the filter could never auto-approve everybody who is on call anywhere;
- PagerDuty computes on-calls through escalation policies: a schedule that no escalation policy
  uses has nobody on call here;
- each entry's `escalation_level` is kept: a person on call at several levels of the schedule
  (through several escalation policies) counts at the lowest (`escalation_level`);
- answers are cached per schedule for `cache_seconds` (thread-safe); failures are never cached;
- every failure is `OnCallUnavailable`, whose one-line message never carries the token.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from app.providers import rest
from app.providers.base import ProviderError
from app.text import register_secret, short

if TYPE_CHECKING:
    from app.config import Settings

SERVICE = "PagerDuty"
ACCEPT = "application/vnd.pagerduty+json;version=2"
PAGE_SIZE = 100  # PagerDuty's largest page
MAX_PAGES = 50


class OnCallUnavailable(Exception):
    """PagerDuty could not answer (no token, unreachable, 4xx/5xx, timeout, bad JSON); str()
    says why in one line, never containing the token."""


class PagerDuty:
    """A read-only PagerDuty client for on-call questions; see the module docstring."""

    def __init__(
        self,
        token: str,
        base_url: str = "https://api.pagerduty.com",
        timeout: float = 5.0,
        cache_seconds: float = 60.0,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, int | None]]] = {}
        self._lock = threading.Lock()
        register_secret(token)

    def on_call_levels(self, schedule_id: str) -> dict[str, int | None]:
        """Lower-cased email → lowest escalation level (None: PagerDuty gave none) of whoever
        is on call now for the schedule (cached)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(schedule_id)
        if cached is not None and cached[0] > now:
            return dict(cached[1])
        levels = self._fetch(schedule_id)
        with self._lock:
            self._cache[schedule_id] = (time.monotonic() + self.cache_seconds, dict(levels))
        return levels

    def on_call_emails(self, schedule_id: str) -> set[str]:
        """Lower-cased emails of whoever is on call now for the schedule (cached)."""
        return set(self.on_call_levels(schedule_id))

    def escalation_level(self, schedule_id: str, email: str) -> int | None:
        """The person's escalation level in the schedule now; LookupError when they are not on
        call there, None when PagerDuty did not say."""
        levels = self.on_call_levels(schedule_id)
        wanted = email.strip().lower()
        if wanted not in levels:
            raise LookupError(f"{email} is not on call in {schedule_id}")
        return levels[wanted]

    def is_on_call(self, schedule_id: str, email: str) -> bool:
        """Is the person with this email (any case) on call now for the schedule?"""
        return email.strip().lower() in self.on_call_emails(schedule_id)

    def probe(self) -> None:
        """One cheap authenticated call (a one-entry page of on-calls), proving the token and
        that PagerDuty is reachable; raises OnCallUnavailable otherwise."""
        self._page({"limit": 1, "offset": 0})

    def _fetch(self, schedule_id: str) -> dict[str, int | None]:
        levels: dict[str, int | None] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            page = self._page(
                {
                    "schedule_ids[]": schedule_id,
                    "include[]": "users",
                    "time_zone": "UTC",
                    "limit": PAGE_SIZE,
                    "offset": offset,
                }
            )
            entries = page["oncalls"]
            for entry in entries:
                email = _email_of(entry, schedule_id)
                if email:
                    levels[email] = _lowest(levels.get(email), entry.get("escalation_level"))
            if not page.get("more") or not entries:
                return levels
            offset += len(entries)
        raise self._unavailable(f"{SERVICE} listed more than {MAX_PAGES} pages of on-calls")

    def _page(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self._token:
            raise OnCallUnavailable("PAGERDUTY_TOKEN is not set")
        try:
            answer = rest.send(
                SERVICE,
                "GET",
                f"{self.base_url}/oncalls?{urlencode(params)}",
                headers={"Accept": ACCEPT, "Authorization": f"Token token={self._token}"},
                timeout=self.timeout,
            )
        except ProviderError as exc:
            raise self._unavailable(str(exc)) from None
        if answer.status == 401:
            raise self._unavailable(
                f"{SERVICE} refused the token (HTTP 401): check PAGERDUTY_TOKEN"
            )
        if answer.status != 200:
            raise self._unavailable(
                f"{SERVICE} answered HTTP {answer.status}: {short(answer.text())}"
            )
        body = answer.body
        if not isinstance(body, dict) or not isinstance(body.get("oncalls"), list):
            raise self._unavailable(
                f"{SERVICE} answered something that is not a list of on-calls: "
                f"{short(answer.text(), 120)}"
            )
        return body

    def _unavailable(self, message: str) -> OnCallUnavailable:
        if self._token:
            message = message.replace(self._token, "[secret]")
        return OnCallUnavailable(" ".join(message.split()))


def _email_of(entry: Any, schedule_id: str) -> str | None:
    if not isinstance(entry, dict):
        return None
    schedule = entry.get("schedule")
    if not isinstance(schedule, dict) or schedule.get("id") != schedule_id:
        return None
    user = entry.get("user")
    email = user.get("email") if isinstance(user, dict) else None
    return email.strip().lower() if isinstance(email, str) and email.strip() else None


def _lowest(known: int | None, level: Any) -> int | None:
    """The lower of two escalation levels, ignoring one that is not a whole number."""
    if not isinstance(level, int) or isinstance(level, bool):
        return known
    return level if known is None else min(known, level)


def pagerduty_from_settings(settings: Settings) -> PagerDuty | None:
    """The client for PAGERDUTY_TOKEN and PAGERDUTY_API_URL; None when no token is set."""
    if settings.pagerduty_token is None:
        return None
    # PagerDuty() registers the token for log masking.
    return PagerDuty(
        settings.pagerduty_token.get_secret_value(), base_url=settings.pagerduty_api_url
    )
