"""Jira tracker: Jira Cloud and Data Center issues by key (REST API v3 or v2).

Calls: `GET {url}/rest/api/{3|2}/issue/{key}?fields=summary,status,assignee` (404: no such
issue, or one the bot's account may not see) and `POST …/issue/{key}/comment`. API v3 (Cloud)
takes a comment as Atlassian Document Format, v2 (Data Center, and Cloud too) as a plain
`body` string. Auth: `basic` (Jira Cloud: the account's `email` and an API token) or `bearer`
(Data Center: a personal access token); the token comes from the variable `token_env` names.

An issue whose status category is "done" is closed; every other category (to do, in progress)
is open. The assignee's email shows only where Jira lets the account see it (Cloud users may
hide it): without it, `require_assignee_is_requester` cannot be satisfied.
"""

from __future__ import annotations

import base64
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers.base import ProviderConfigError, env_secret
from app.trackers.base import Person, Ticket, TicketNotFound, TrackerError, refuse, send

SERVICE = "Jira"


class JiraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl  # https://ACME.atlassian.net, or your Data Center's base URL
    token_env: str = Field(min_length=1)
    auth: Literal["basic", "bearer"] = "basic"
    email: str | None = Field(default=None, min_length=3)  # basic auth: the token's account
    api_version: Literal[2, 3] = 3
    timeout: float = Field(default=10.0, gt=0, le=120)


class JiraTracker:
    Config = JiraConfig
    SERVICE = SERVICE
    incidents = False

    def __init__(self, config: JiraConfig) -> None:
        if config.auth == "basic" and not config.email:
            raise ProviderConfigError("auth: basic (Jira Cloud) needs `email`, the token's account")
        self.config = config
        token = env_secret(config.token_env)
        if config.auth == "basic":
            pair = f"{config.email}:{token}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode()
        else:
            self._authorization = f"Bearer {token}"
        self._base = str(config.url).rstrip("/")

    def _call(self, method: str, path: str, body: object = None) -> Any:
        return send(
            SERVICE,
            method,
            f"{self._base}/rest/api/{self.config.api_version}{path}",
            headers={
                "Accept": "application/json",
                "Authorization": self._authorization,
            },
            json_body=body,
            timeout=self.config.timeout,
        )

    def lookup(self, ticket: str) -> Ticket:
        key = ticket.strip()
        answer = self._call("GET", f"/issue/{quote(key, safe='')}?fields=summary,status,assignee")
        if answer.status == 404:
            raise TicketNotFound(f"{key} was not found in Jira (or the bot may not see it).")
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise refuse(SERVICE, answer)
        fields = answer.body.get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        assignee = fields.get("assignee")
        shown_key = str(answer.body.get("key") or key)
        return Ticket(
            key=shown_key,
            title=str(fields.get("summary") or ""),
            status=str(status.get("name") or category or "unknown"),
            state="closed" if category == "done" else "open",
            url=f"{self._base}/browse/{quote(shown_key, safe='')}",
            assignees=(
                (Person(str(assignee.get("displayName") or ""), assignee.get("emailAddress")),)
                if isinstance(assignee, dict)
                else ()
            ),
            id=str(answer.body.get("id") or "") or None,
        )

    def comment(self, ticket: str, text: str) -> None:
        key = quote(ticket.strip(), safe="")
        body: object = text if self.config.api_version == 2 else _document(text)
        answer = self._call("POST", f"/issue/{key}/comment", {"body": body})
        if answer.status == 404:
            raise TrackerError(f"{ticket} was not found in Jira", retryable=False)
        if answer.status not in (200, 201):
            raise refuse(SERVICE, answer)

    def probe(self) -> str:
        """The token is accepted (GET /myself changes nothing)."""
        answer = self._call("GET", "/myself")
        if answer.status != 200:
            raise refuse(SERVICE, answer)
        return "token accepted"


def _document(text: str) -> dict[str, Any]:
    """Plain text as Atlassian Document Format: one paragraph per line (ADF refuses empty
    text nodes, so blank lines are left out)."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        for line in text.splitlines()
        if line.strip()
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}
