"""GitHub issues tracker: an issue (or pull request) by `owner/repo#12`, or `#12` / `12` in the
configured `repo`.

Calls: `GET /repos/{owner}/{repo}/issues/{n}` (404 or 410: no such issue, or a repository the
token may not see), `GET /users/{login}` for each assignee's public email, and
`POST /repos/{owner}/{repo}/issues/{n}/comments` with `{"body": text}`; `Authorization: Bearer
<token>` from the variable `token_env` names (a fine-grained token with Issues: read and write
on the repositories, or a classic token with `repo`). `api_url` for GitHub Enterprise Server.

An issue's state is open or closed. GitHub shows an assignee's email only when they made it
public: without it, `require_assignee_is_requester` cannot be satisfied.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers.base import env_secret
from app.trackers.base import (
    Person,
    Ticket,
    TicketNotFound,
    TicketState,
    TrackerError,
    refuse,
    send,
)

SERVICE = "GitHub"
_TICKET = re.compile(r"^(?:(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+))?#?(?P<number>\d+)$")
_REPO = r"^[\w.-]+/[\w.-]+$"
MAX_ASSIGNEES = 3  # whose emails are asked for (each is one more call within the lookup)


class GitHubIssuesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_env: str = Field(min_length=1)
    repo: str | None = Field(default=None, pattern=_REPO)  # for tickets written `#12`
    api_url: HttpUrl = HttpUrl("https://api.github.com")
    timeout: float = Field(default=10.0, gt=0, le=120)


class GitHubIssuesTracker:
    Config = GitHubIssuesConfig
    SERVICE = SERVICE
    incidents = False

    def __init__(self, config: GitHubIssuesConfig) -> None:
        self.config = config
        self._token = env_secret(config.token_env)
        self._base = str(config.api_url).rstrip("/")

    def _call(self, method: str, path: str, body: object = None) -> Any:
        return send(
            SERVICE,
            method,
            self._base + path,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            json_body=body,
            timeout=self.config.timeout,
        )

    def _issue_path(self, ticket: str) -> tuple[str, str]:
        """("/repos/o/r/issues/n", "o/r#n") for a ticket, TicketNotFound if it names none."""
        match = _TICKET.match(ticket.strip())
        repo = f"{match['owner']}/{match['repo']}" if match and match["owner"] else None
        repo = repo or self.config.repo
        if match is None or repo is None:
            raise TicketNotFound(
                f"{ticket} is not a GitHub issue: write owner/repo#number"
                + (f" or #number (in {self.config.repo})" if self.config.repo else "")
                + "."
            )
        return f"/repos/{repo}/issues/{match['number']}", f"{repo}#{match['number']}"

    def lookup(self, ticket: str) -> Ticket:
        path, key = self._issue_path(ticket)
        answer = self._call("GET", path)
        if answer.status in (404, 410):
            raise TicketNotFound(f"{key} was not found on GitHub (or the bot may not see it).")
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise _refuse(answer)
        issue = answer.body
        logins = [a.get("login") for a in issue.get("assignees") or [] if isinstance(a, dict)]
        state: TicketState = "closed" if issue.get("state") == "closed" else "open"
        return Ticket(
            key=key,
            title=str(issue.get("title") or ""),
            status=str(issue.get("state_reason") or issue.get("state") or state),
            state=state,
            url=issue.get("html_url"),
            assignees=tuple(self._person(login) for login in logins[:MAX_ASSIGNEES] if login),
            id=str(issue.get("id") or "") or None,
        )

    def _person(self, login: str) -> Person:
        """The assignee with their public email, if they show one (an error: without it)."""
        try:
            answer = self._call("GET", f"/users/{login}")
        except TrackerError:
            return Person(login)
        body = answer.body if answer.status == 200 and isinstance(answer.body, dict) else {}
        return Person(login, body.get("email"))

    def comment(self, ticket: str, text: str) -> None:
        path, key = self._issue_path(ticket)
        answer = self._call("POST", f"{path}/comments", {"body": text})
        if answer.status in (404, 410):
            raise TrackerError(f"{key} was not found on GitHub", retryable=False)
        if answer.status != 201:
            raise _refuse(answer)


def _refuse(answer: Any) -> TrackerError:
    """GitHub says "rate limit" with a 403 (and x-ratelimit-remaining: 0): that one passes."""
    if answer.status == 403 and answer.headers.get("x-ratelimit-remaining") == "0":
        return TrackerError(f"{SERVICE} rate limit reached")
    return refuse(SERVICE, answer)
