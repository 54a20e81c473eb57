"""Fakes of four ticket trackers' REST APIs on 127.0.0.1, with state, for app/trackers/.

Each keeps its service's rules, so the adapters are tested against what the service would
answer; each is stricter than the service where a client mistake would otherwise pass unseen.
Every fake records every request (`calls`), answers 401 to a missing or wrong auth header, 404
to an unknown path or ticket, and takes `script` (the next requests fail with a status, or hang
so the client times out). `comments` holds what was commented, per ticket, in order.

- FakeJira (Cloud REST v3 or Data Center v2): `Authorization: Basic base64(email:token)` or
  `Bearer <token>`; `GET /rest/api/{v}/issue/{key}` must ask `fields=summary,status,assignee`
  (400 otherwise) and answers only those fields, with `status.statusCategory.key` (new,
  indeterminate, done) and the assignee's `displayName` and `emailAddress`;
  `POST /rest/api/{v}/issue/{key}/comment` needs `Content-Type: application/json` (415) and a
  `body` that is Atlassian Document Format on v3 (a doc of paragraphs of text nodes, no empty
  text) and a plain string on v2 (400 otherwise); answers 201.
- FakeGitHubIssues: `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`
  (415 otherwise); `GET /repos/{o}/{r}/issues/{n}` (state open/closed, title, html_url,
  assignees as logins), `GET /users/{login}` (the public email or null),
  `POST /repos/{o}/{r}/issues/{n}/comments` with a string `body` (422 otherwise); answers 201.
- FakePagerDutyIncidents: `Authorization: Token token=<token>` and `Accept:
  application/vnd.pagerduty+json;version=2`; `GET /incidents/{id or number}` (assignees as
  user references, with `email` only for `include[]=assignees`); `POST /incidents/{id}/notes`
  only by id (404 by number), with a `From` header (400 without) and `{"note": {"content"}}`.
- FakeIncidentIo: `Authorization: Bearer <key>`; `GET /v2/incidents/{id or number}` answers
  `{"incident": {id, reference, name, incident_status: {name, category}, permalink,
  incident_role_assignments}}`.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote

from .local_server import RecordingFake, Reply, Request, Script


class _Tracker(RecordingFake):
    """What the four fakes share: the script, the auth check, comments by ticket."""

    def __init__(self) -> None:
        self.script = Script()
        self.comments: dict[str, list[Any]] = {}
        super().__init__()

    def _auth_ok(self, request: Request) -> bool:
        raise NotImplementedError

    def _answer(self, request: Request, body: Any) -> Reply:
        raise NotImplementedError

    def _handle(self, request: Request) -> Reply:
        body = self._record(request).body
        status, pause = self.script.next()
        if pause:
            time.sleep(pause)
            return Reply(504, {"message": "scripted hang"})
        if status is not None:
            return Reply(status, {"message": f"scripted HTTP {status}"})
        if not self._auth_ok(request):
            return Reply(401, {"message": "Unauthorized"})
        with self._lock:
            return self._answer(request, body)

    def _comment(self, key: str, text: Any) -> None:
        self.comments.setdefault(key, []).append(text)

    def commented(self, key: str) -> list[Any]:
        with self._lock:
            return list(self.comments.get(key, []))


class FakeJira(_Tracker):
    def __init__(self, token: str, email: str | None = None, api_version: int = 3) -> None:
        self.token, self.email, self.api_version = token, email, api_version
        self.issues: dict[str, dict[str, Any]] = {}
        super().__init__()

    def add_issue(
        self,
        key: str,
        summary: str,
        status: str = "In Progress",
        category: str = "indeterminate",
        assignee: tuple[str, str | None] | None = None,
    ) -> None:
        with self._lock:
            self.issues[key] = {
                "summary": summary,
                "status": status,
                "category": category,
                "assignee": assignee,
            }

    def _auth_ok(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if self.email is not None:
            pair = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            return auth == f"Basic {pair}"
        return auth == f"Bearer {self.token}"

    def _answer(self, request: Request, body: Any) -> Reply:
        prefix = f"/rest/api/{self.api_version}/issue/"
        match = re.fullmatch(re.escape(prefix) + r"([^/]+)(/comment)?", request.path)
        missing = Reply(
            404,
            {"errorMessages": ["Issue does not exist or you do not have permission to see it."]},
        )
        if match is None or unquote(match[1]) not in self.issues:
            return missing
        key = unquote(match[1])
        issue = self.issues[key]
        if request.method == "GET" and not match[2]:
            fields = parse_qs(request.query).get("fields", [""])[0].split(",")
            if sorted(fields) != ["assignee", "status", "summary"]:
                return Reply(400, {"errorMessages": [f"ask for the fields you use: {fields}"]})
            name, email = issue["assignee"] or (None, None)
            return Reply(
                200,
                {
                    "id": "10001",
                    "key": key,
                    "fields": {
                        "summary": issue["summary"],
                        "status": {
                            "name": issue["status"],
                            "statusCategory": {"key": issue["category"]},
                        },
                        "assignee": {"displayName": name, "emailAddress": email} if name else None,
                    },
                },
            )
        if request.method == "POST" and match[2]:
            if not request.headers.get("content-type", "").startswith("application/json"):
                return Reply(415, {"errorMessages": ["Unsupported Media Type"]})
            text = _comment_text(body, self.api_version)
            if text is None:
                return Reply(400, {"errorMessages": [f"bad comment body for v{self.api_version}"]})
            self._comment(key, text)
            return Reply(201, {"id": str(len(self.comments[key]))})
        return Reply(405, {"errorMessages": ["Method Not Allowed"]})


def _comment_text(body: Any, api_version: int) -> str | None:
    """The comment as text, or None when the body is not what that API version takes."""
    value = body.get("body") if isinstance(body, dict) else None
    if api_version == 2:
        return value if isinstance(value, str) and value else None
    if not (isinstance(value, dict) and value.get("type") == "doc" and value.get("version") == 1):
        return None
    lines = []
    for paragraph in value.get("content") or []:
        nodes = paragraph.get("content") or []
        if paragraph.get("type") != "paragraph" or not nodes:
            return None
        if any(n.get("type") != "text" or not n.get("text") for n in nodes):
            return None  # ADF refuses empty text nodes
        lines.append("".join(n["text"] for n in nodes))
    return "\n".join(lines) or None


class FakeGitHubIssues(_Tracker):
    def __init__(self, token: str) -> None:
        self.token = token
        self.issues: dict[str, dict[str, Any]] = {}  # "owner/repo#n"
        self.emails: dict[str, str | None] = {}  # login → public email
        super().__init__()

    def add_issue(self, key: str, title: str, state: str = "open", assignees: tuple = ()) -> None:
        with self._lock:
            self.issues[key] = {"title": title, "state": state, "assignees": list(assignees)}

    def _auth_ok(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def _answer(self, request: Request, body: Any) -> Reply:
        if request.headers.get("accept") != "application/vnd.github+json":
            return Reply(415, {"message": "Accept must be application/vnd.github+json"})
        not_found = Reply(404, {"message": "Not Found"})
        user = re.fullmatch(r"/users/([^/]+)", request.path)
        if user and request.method == "GET":
            login = user[1]
            if login not in self.emails:
                return not_found
            return Reply(200, {"login": login, "email": self.emails[login]})
        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/(\d+)(/comments)?", request.path)
        key = f"{match[1]}/{match[2]}#{match[3]}" if match else ""
        if match is None or key not in self.issues:
            return not_found
        issue = self.issues[key]
        if request.method == "GET" and not match[4]:
            return Reply(
                200,
                {
                    "id": 1000 + int(match[3]),
                    "number": int(match[3]),
                    "title": issue["title"],
                    "state": issue["state"],
                    "html_url": f"https://github.test/{match[1]}/{match[2]}/issues/{match[3]}",
                    "assignees": [{"login": login} for login in issue["assignees"]],
                },
            )
        if request.method == "POST" and match[4]:
            if not (isinstance(body, dict) and isinstance(body.get("body"), str)):
                return Reply(422, {"message": "Validation Failed"})
            self._comment(key, body["body"])
            return Reply(201, {"id": len(self.comments[key])})
        return Reply(405, {"message": "Method Not Allowed"})


class FakePagerDutyIncidents(_Tracker):
    ACCEPT = "application/vnd.pagerduty+json;version=2"

    def __init__(self, token: str) -> None:
        self.token = token
        self.incidents: dict[str, dict[str, Any]] = {}  # by id
        super().__init__()

    def add_incident(
        self,
        incident_id: str,
        number: int,
        title: str,
        status: str = "acknowledged",
        assignees: tuple[tuple[str, str], ...] = (),
    ) -> None:
        with self._lock:
            self.incidents[incident_id] = {
                "number": number,
                "title": title,
                "status": status,
                "assignees": assignees,
            }

    def _auth_ok(self, request: Request) -> bool:
        return (
            request.headers.get("authorization") == f"Token token={self.token}"
            and request.headers.get("accept") == self.ACCEPT
        )

    def _find(self, reference: str) -> str | None:
        if reference in self.incidents:
            return reference
        return next((i for i, v in self.incidents.items() if str(v["number"]) == reference), None)

    def _answer(self, request: Request, body: Any) -> Reply:
        not_found = Reply(404, {"error": {"message": "Not Found", "code": 2100}})
        match = re.fullmatch(r"/incidents/([^/]+)(/notes)?", request.path)
        if match is None:
            return not_found
        if request.method == "POST" and match[2]:
            if match[1] not in self.incidents:  # notes by id only
                return not_found
            if not request.headers.get("from"):
                return Reply(400, {"error": {"message": "You must include a From header"}})
            note = body.get("note") if isinstance(body, dict) else None
            if not (isinstance(note, dict) and isinstance(note.get("content"), str)):
                return Reply(400, {"error": {"message": "Invalid Input Provided"}})
            self._comment(match[1], note["content"])
            return Reply(201, {"note": {"id": "PNOTE", "content": note["content"]}})
        incident_id = self._find(match[1])
        if request.method != "GET" or match[2] or incident_id is None:
            return not_found
        with_emails = "assignees" in parse_qs(request.query).get("include[]", [])
        incident = self.incidents[incident_id]
        assignments = [
            {
                "assignee": {"id": f"PU{n}", "type": "user", "name": name, "email": email}
                if with_emails
                else {"id": f"PU{n}", "type": "user_reference", "summary": name}
            }
            for n, (name, email) in enumerate(incident["assignees"])
        ]
        return Reply(
            200,
            {
                "incident": {
                    "id": incident_id,
                    "incident_number": incident["number"],
                    "title": incident["title"],
                    "status": incident["status"],
                    "html_url": f"https://acme.pagerduty.test/incidents/{incident_id}",
                    "assignments": assignments,
                }
            },
        )


class FakeIncidentIo(_Tracker):
    def __init__(self, token: str) -> None:
        self.token = token
        self.incidents: dict[str, dict[str, Any]] = {}  # by id
        super().__init__()

    def add_incident(
        self,
        incident_id: str,
        number: int,
        name: str,
        category: str = "live",
        lead: tuple[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.incidents[incident_id] = {
                "number": number,
                "name": name,
                "category": category,
                "lead": lead,
            }

    def _auth_ok(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def _answer(self, request: Request, body: Any) -> Reply:
        match = re.fullmatch(r"/v2/incidents/([^/]+)", request.path)
        found = None
        if match and request.method == "GET":
            found = next(
                (i for i, v in self.incidents.items() if match[1] in (i, str(v["number"]))), None
            )
        if found is None:
            return Reply(404, {"type": "not_found", "status": 404})
        incident = self.incidents[found]
        roles = []
        if incident["lead"]:
            name, email = incident["lead"]
            roles.append(
                {"role": {"role_type": "lead"}, "assignee": {"name": name, "email": email}}
            )
        return Reply(
            200,
            {
                "incident": {
                    "id": found,
                    "reference": f"INC-{incident['number']}",
                    "name": incident["name"],
                    "incident_status": {
                        "name": incident["category"].title(),
                        "category": incident["category"],
                    },
                    "permalink": f"https://app.incident.test/incidents/{incident['number']}",
                    "incident_role_assignments": roles,
                }
            },
        )
