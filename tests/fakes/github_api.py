"""A fake of GitHub's team membership API on 127.0.0.1, with state, for the github_team provider.

Rules it keeps (GitHub's, so the provider is tested against what GitHub would answer):
- every call needs `Authorization: Bearer <token>` (or `token <token>`), else 401 "Bad
  credentials";
- PUT /orgs/{org}/teams/{team}/memberships/{user} takes JSON `{"role": "member"|"maintainer"}`
  (else 422) and answers 200 with the membership: state "active", or "pending" for a user who is
  not yet in the organization (invited); a second PUT answers the same;
- GET of the same path answers 200 with the membership, or 404 when there is none;
- DELETE answers 204, or 404 when there is no membership; unknown org, team or user is 404.
`script` makes the next requests fail with a status, or hang and do nothing; `calls` records
every request.
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

from .local_server import RecordingFake, Reply, Request, Script

_MEMBERSHIP = re.compile(r"^/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)$")
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


class FakeGitHub(RecordingFake):
    def __init__(
        self,
        token: str,
        org: str = "acme",
        teams: tuple[str, ...] = ("prod-admins",),
        users: tuple[str, ...] = ("bob", "alice"),
        outsiders: tuple[str, ...] = (),
    ) -> None:
        self.token, self.org = token, org
        self.users = set(users) | set(outsiders)
        self.outsiders = set(outsiders)  # GitHub users not in the org yet: memberships pend
        self.members: dict[str, dict[str, str]] = {team: {} for team in teams}
        self.script = Script()
        super().__init__()

    def is_member(self, team: str, user: str) -> bool:
        with self._lock:
            return user in self.members.get(team, {})

    def add_member(self, team: str, user: str) -> None:
        """As an org owner would in GitHub's web UI, without the bot."""
        with self._lock:
            self.members[team][user] = "member"

    def _handle(self, request: Request) -> Reply:
        body = self._record(request).body
        status, pause = self.script.next()
        if pause:  # the client gives up meanwhile; nothing is done
            time.sleep(pause)
            return Reply(504, {"message": "scripted hang"})
        if status is not None:
            return Reply(status, {"message": f"scripted HTTP {status}"})
        auth = request.headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return Reply(401, {"message": "Bad credentials"})
        match = _MEMBERSHIP.match(request.path)
        if match is None:
            return Reply(404, NOT_FOUND)
        org, team, user = (unquote(part) for part in match.groups())
        with self._lock:
            if org != self.org or team not in self.members or user not in self.users:
                return Reply(404, NOT_FOUND)
            team_members = self.members[team]
            if request.method == "GET":
                if user not in team_members:
                    return Reply(404, NOT_FOUND)
                return Reply(200, self._membership(team, user, team_members[user]))
            if request.method == "PUT":
                role = body.get("role") if isinstance(body, dict) else None
                if role not in ("member", "maintainer"):
                    return Reply(422, {"message": "Validation Failed", "body": body})
                team_members[user] = role
                return Reply(200, self._membership(team, user, role))
            if request.method == "DELETE":
                if team_members.pop(user, None) is None:
                    return Reply(404, NOT_FOUND)
                return Reply(204, None)
        return Reply(405, {"message": "Method not allowed"})

    def _membership(self, team: str, user: str, role: str) -> dict[str, str]:
        return {
            "url": f"{self.url}/organizations/1/team/1/memberships/{user}",
            "role": role,
            "state": "pending" if user in self.outsiders else "active",
        }
