"""GitHub team provider: add / remove a user to / from a team of an organization (REST API).

The role's `grant` is the team slug, the person's `identity` their GitHub login. Calls:
PUT, DELETE and GET /orgs/{org}/teams/{team_slug}/memberships/{username}, with
`Authorization: Bearer <token>` read from the environment variable `token_env` names (a token
that may manage the team's members). `api_url` is https://api.github.com unless you run GitHub
Enterprise Server (https://HOST/api/v3).

Idempotent by the API's own design: PUT of a member answers 200 again, and a DELETE answering
404 means the membership is already gone. A membership still "pending" (the user was invited to
the organization and has not accepted) counts as present, so a revoke also cancels invitations.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers import rest
from app.providers.base import AccessGrant, ProviderError, env_secret
from app.text import short

SERVICE = "GitHub"


class GitHubTeamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str = Field(min_length=1, max_length=100)
    token_env: str = Field(min_length=1)
    api_url: HttpUrl = HttpUrl("https://api.github.com")
    role: Literal["member", "maintainer"] = "member"
    timeout: float = Field(default=10.0, gt=0, le=120)


class GitHubTeamProvider:
    Config = GitHubTeamConfig

    def __init__(self, config: GitHubTeamConfig) -> None:
        self.config = config
        self.token = env_secret(config.token_env)

    def _membership(self, method: str, access: AccessGrant, body: object = None) -> rest.Answer:
        base = str(self.config.api_url).rstrip("/")
        org, team, user = (
            quote(part, safe="") for part in (self.config.org, access.grant, access.identity)
        )
        return rest.send(
            SERVICE,
            method,
            f"{base}/orgs/{org}/teams/{team}/memberships/{user}",
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            json_body=body,
            timeout=self.config.timeout,
        )

    def grant(self, access: AccessGrant) -> str | None:
        answer = self._membership("PUT", access, {"role": self.config.role})
        if answer.status != 200:
            raise _refuse(answer)
        state = answer.body.get("state") if isinstance(answer.body, dict) else None
        if state == "pending":
            return f"{access.identity} was invited to {self.config.org}; access starts on accepting"
        return None

    def revoke(self, access: AccessGrant) -> None:
        answer = self._membership("DELETE", access)
        if answer.status not in (204, 404):
            raise _refuse(answer)

    def check(self, access: AccessGrant) -> bool:
        answer = self._membership("GET", access)
        if answer.status == 404:
            return False
        if answer.status != 200:
            raise _refuse(answer)
        return True

    def probe(self) -> str:
        """The token may list the organization's teams (one, to keep it cheap)."""
        org = quote(self.config.org, safe="")
        answer = rest.send(
            SERVICE,
            "GET",
            f"{str(self.config.api_url).rstrip('/')}/orgs/{org}/teams?per_page=1",
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            timeout=self.config.timeout,
        )
        if answer.status == 404:
            raise ProviderError(
                f"{SERVICE} shows no organization {self.config.org!r} to this token",
                retryable=False,
            )
        if answer.status != 200:
            raise _refuse(answer)
        return f"token accepted; it can list the teams of {self.config.org}"


def _refuse(answer: rest.Answer) -> ProviderError:
    """GitHub says "rate limit" with a 403 (and x-ratelimit-remaining: 0): that one passes."""
    if answer.status == 403 and answer.headers.get("x-ratelimit-remaining") == "0":
        return ProviderError(f"{SERVICE} rate limit reached: {short(answer.text())}")
    return rest.refuse(SERVICE, answer)
