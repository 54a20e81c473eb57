"""A fake of PagerDuty's REST API v2 `GET /oncalls` on 127.0.0.1, for the on-call client.

Rules it keeps (PagerDuty's, so app/oncall.py is tested against what PagerDuty would answer):
- every call needs `Authorization: Token token=<token>`, else 401; the fake is stricter than
  PagerDuty about `Accept: application/vnd.pagerduty+json;version=2` (also 401 without it), so a
  client that forgets the versioned media type fails here rather than in production;
- `GET /oncalls?schedule_ids[]=…&include[]=users&limit=…&offset=…` answers
  `{"oncalls": [...], "limit", "offset", "more", "total": null}`: one entry per person on call
  now for each schedule asked about (all schedules when none is named), each with `schedule`
  and `escalation_policy` references and the `user`: a full user object with `email` only when
  `include[]=users` is asked for, else a `user_reference` without one;
- a page holds at most `page_size` entries (small by default, so clients must follow `more`).
`set_on_call()` arranges who is on call; `ignore_schedule_filter = True` makes it list every
schedule's on-calls whatever is asked (a misbehaving server, to prove the client filters too);
`script` makes the next requests fail with a status or hang; `calls` records every request.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from .local_server import RecordingFake, Reply, Request, Script

ACCEPT = "application/vnd.pagerduty+json;version=2"


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": {"message": message}})


class FakePagerDuty(RecordingFake):
    def __init__(self, token: str, page_size: int = 2) -> None:
        self.token = token
        self.page_size = page_size
        self._on_call: dict[str, list[str]] = {}
        self._levels: dict[tuple[str, str], int] = {}
        self.ignore_schedule_filter = False
        self.script = Script()
        super().__init__()

    def set_on_call(self, schedule_id: str, emails: list[str], level: int = 1) -> None:
        """Who is on call now for `schedule_id`, at escalation `level` (replaces what was set
        before)."""
        with self._lock:
            self._on_call[schedule_id] = list(emails)
            for email in emails:
                self._levels[(schedule_id, email)] = level

    def oncalls_calls(self) -> int:
        """How many requests reached GET /oncalls so far."""
        return sum(1 for call in self.calls if call.path == "/oncalls")

    def _handle(self, request: Request) -> Reply:
        self._record(request)
        status, pause = self.script.next()
        if pause:  # the client gives up meanwhile
            time.sleep(pause)
            return _error(504, "scripted hang")
        if status is not None:
            headers = {"Retry-After": "1"} if status == 429 else {}
            return Reply(status, {"error": {"message": f"scripted HTTP {status}"}}, headers)
        if request.headers.get("authorization") != f"Token token={self.token}":
            return _error(401, "Unauthorized")
        if request.headers.get("accept") != ACCEPT:
            return _error(401, f"Accept must be {ACCEPT}")
        if request.method != "GET" or request.path != "/oncalls":
            return _error(404, "Not Found")
        return Reply(200, self._oncalls(parse_qs(request.query)))

    def _oncalls(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = min(int(query.get("limit", ["25"])[0]), self.page_size)
        offset = int(query.get("offset", ["0"])[0])
        with_users = "users" in query.get("include[]", [])
        with self._lock:
            asked = [] if self.ignore_schedule_filter else query.get("schedule_ids[]", [])
            schedules = asked or sorted(self._on_call)
            entries = [
                self._entry(schedule, email, with_users)
                for schedule in schedules
                for email in self._on_call.get(schedule, [])
            ]
        page = entries[offset : offset + limit]
        return {
            "oncalls": page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(entries),
            "total": None,
        }

    def _entry(self, schedule: str, email: str, with_users: bool) -> dict[str, Any]:
        user_id = "PU" + email.split("@")[0].upper()[:6]
        reference = {"id": user_id, "type": "user_reference", "summary": email.split("@")[0]}
        user = (
            {**reference, "type": "user", "name": email.split("@")[0], "email": email}
            if with_users
            else reference
        )
        return {
            "escalation_policy": {"id": "PEP" + schedule, "type": "escalation_policy_reference"},
            "escalation_level": self._levels.get((schedule, email), 1),
            "schedule": {"id": schedule, "type": "schedule_reference"},
            "user": user,
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-08T00:00:00Z",
        }
