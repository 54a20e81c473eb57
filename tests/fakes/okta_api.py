"""A fake of Okta's users and groups API on 127.0.0.1, with state, for the okta_group provider.

Rules it keeps (Okta's, so the provider is tested against what Okta would answer):
- every call needs `Authorization: SSWS <token>`, else 401 with errorCode E0000011;
- GET /api/v1/users/{id or login} answers the user (`id`, `profile.login`) or 404 E0000007;
- PUT and DELETE /api/v1/groups/{groupId}/users/{userId} take no body and answer 204 (also
  when nothing changes); an unknown group or user is 404;
- GET /api/v1/users/{userId}/groups?limit=N lists the user's groups a page at a time (at most
  `page_size`), with `Link: <…?after=…>; rel="next"` while more follow.
`script` makes the next requests fail with a status, or hang and do nothing; `calls` records
every request.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, unquote

from .local_server import RecordingFake, Reply, Request, Script

_USER = re.compile(r"^/api/v1/users/([^/]+)$")
_USER_GROUPS = re.compile(r"^/api/v1/users/([^/]+)/groups$")
_MEMBERSHIP = re.compile(r"^/api/v1/groups/([^/]+)/users/([^/]+)$")


def _error(status: int, code: str, summary: str) -> Reply:
    return Reply(status, {"errorCode": code, "errorSummary": summary, "errorCauses": []})


class FakeOkta(RecordingFake):
    def __init__(
        self,
        token: str,
        users: dict[str, str] | None = None,
        groups: tuple[str, ...] = ("00gPRODADMIN", "00gEVERYONE"),
        page_size: int = 200,
    ) -> None:
        self.token = token
        self.logins = users or {"bob@example.com": "00ubob0000000001"}  # login → id
        self.groups: dict[str, set[str]] = {group: set() for group in groups}
        self.page_size = page_size
        self.script = Script()
        super().__init__()

    def is_member(self, group: str, login: str) -> bool:
        with self._lock:
            return self.logins[login] in self.groups[group]

    def add_member(self, group: str, login: str) -> None:
        """As an Okta admin would in the admin console, without the bot."""
        with self._lock:
            self.groups[group].add(self.logins[login])

    def _user_id(self, id_or_login: str) -> str | None:
        if id_or_login in self.logins.values():
            return id_or_login
        return self.logins.get(id_or_login)

    def _handle(self, request: Request) -> Reply:
        self._record(request)
        status, pause = self.script.next()
        if pause:  # the client gives up meanwhile; nothing is done
            time.sleep(pause)
            return _error(504, "E0000009", "scripted hang")
        if status is not None:
            return _error(status, "E0000009", f"scripted HTTP {status}")
        if request.headers.get("authorization") != f"SSWS {self.token}":
            return _error(401, "E0000011", "Invalid token provided")
        with self._lock:
            return self._route(request)

    def _route(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if method == "GET" and (match := _USER.match(path)):
            user_id = self._user_id(unquote(match.group(1)))
            if user_id is None:
                return _error(404, "E0000007", "Not found: Resource not found (User)")
            login = next(login for login, uid in self.logins.items() if uid == user_id)
            return Reply(200, {"id": user_id, "status": "ACTIVE", "profile": {"login": login}})
        if method == "GET" and (match := _USER_GROUPS.match(path)):
            return self._groups_page(unquote(match.group(1)), request.query)
        if method in ("PUT", "DELETE") and (match := _MEMBERSHIP.match(path)):
            group, user_id = (unquote(part) for part in match.groups())
            if request.body:
                return _error(400, "E0000003", "The request body was not well-formed")
            if group not in self.groups or user_id not in self.logins.values():
                return _error(404, "E0000007", "Not found: Resource not found")
            if method == "PUT":
                self.groups[group].add(user_id)
            else:
                self.groups[group].discard(user_id)
            return Reply(204, None)
        return _error(404, "E0000022", f"The endpoint does not support {method} {path}")

    def _groups_page(self, user_id: str, query: str) -> Reply:
        if user_id not in self.logins.values():
            return _error(404, "E0000007", "Not found: Resource not found (User)")
        params = parse_qs(query)
        limit = min(int(params.get("limit", ["200"])[0]), self.page_size)
        after = params.get("after", [""])[0]
        groups = sorted(g for g, members in self.groups.items() if user_id in members)
        start = groups.index(after) + 1 if after in groups else 0
        page = groups[start : start + limit]
        headers = {}
        if start + limit < len(groups):
            base = f"{self.url}/api/v1/users/{user_id}/groups"
            headers["Link"] = (
                f'<{base}?limit={limit}>; rel="self", <{base}?after={page[-1]}&limit={limit}>; '
                'rel="next"'
            )
        return Reply(
            200, [{"id": g, "type": "OKTA_GROUP", "profile": {"name": g}} for g in page], headers
        )
