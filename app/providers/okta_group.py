"""Okta group provider: add / remove a user to / from an Okta group (Okta's REST API).

The role's `grant` is the group id (00g…), the person's `identity` their Okta login (usually the
email) or user id. `api_url` is the org's URL (https://ACME.okta.com); the API token is read
from the environment variable `token_env` names and sent as `Authorization: SSWS <token>`.

Calls: GET /api/v1/users/{login} (login → user id), PUT and DELETE
/api/v1/groups/{groupId}/users/{userId}, and for `check` GET /api/v1/users/{userId}/groups,
following the `Link: <…>; rel="next"` pages (only to the same `api_url`: the token goes nowhere
else). Idempotent: PUT of a member answers 204 again; DELETE answering 404, or a user Okta does
not know, means there is nothing left to revoke.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers import rest
from app.providers.base import AccessGrant, ProviderError, env_secret

SERVICE = "Okta"
PAGE_SIZE = 200
MAX_PAGES = 50
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class OktaGroupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_url: HttpUrl
    token_env: str = Field(min_length=1)
    timeout: float = Field(default=10.0, gt=0, le=120)


class OktaGroupProvider:
    Config = OktaGroupConfig

    def __init__(self, config: OktaGroupConfig) -> None:
        self.config = config
        self.base = str(config.api_url).rstrip("/")
        self.token = env_secret(config.token_env)

    def _call(self, method: str, url: str) -> rest.Answer:
        return rest.send(
            SERVICE,
            method,
            url,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Authorization": f"SSWS {self.token}",
            },
            timeout=self.config.timeout,
        )

    def _user_id(self, identity: str) -> str | None:
        """Okta's id for a login (or id); None when Okta knows no such user."""
        answer = self._call("GET", f"{self.base}/api/v1/users/{quote(identity, safe='')}")
        if answer.status == 404:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict) or "id" not in answer.body:
            raise rest.refuse(SERVICE, answer)
        return str(answer.body["id"])

    def _membership_url(self, group_id: str, user_id: str) -> str:
        return (
            f"{self.base}/api/v1/groups/{quote(group_id, safe='')}/users/{quote(user_id, safe='')}"
        )

    def grant(self, access: AccessGrant) -> None:
        user_id = self._user_id(access.identity)
        if user_id is None:
            raise ProviderError(f"{SERVICE} has no user {access.identity!r}", retryable=False)
        answer = self._call("PUT", self._membership_url(access.grant, user_id))
        if answer.status not in (200, 204):
            raise rest.refuse(SERVICE, answer)

    def revoke(self, access: AccessGrant) -> None:
        user_id = self._user_id(access.identity)
        if user_id is None:
            return
        answer = self._call("DELETE", self._membership_url(access.grant, user_id))
        if answer.status not in (200, 204, 404):
            raise rest.refuse(SERVICE, answer)

    def check(self, access: AccessGrant) -> bool:
        user_id = self._user_id(access.identity)
        if user_id is None:
            return False
        url: str | None = (
            f"{self.base}/api/v1/users/{quote(user_id, safe='')}/groups?limit={PAGE_SIZE}"
        )
        for _ in range(MAX_PAGES):
            if url is None:
                return False
            answer = self._call("GET", url)
            if answer.status != 200 or not isinstance(answer.body, list):
                raise rest.refuse(SERVICE, answer)
            if any(isinstance(g, dict) and g.get("id") == access.grant for g in answer.body):
                return True
            url = self._next_page(answer)
        raise ProviderError(f"{SERVICE} listed more than {MAX_PAGES} pages of groups")

    def probe(self) -> str:
        """The token is accepted: one group listed, the cheapest read of the groups API."""
        answer = self._call("GET", f"{self.base}/api/v1/groups?limit=1")
        if answer.status != 200 or not isinstance(answer.body, list):
            raise rest.refuse(SERVICE, answer)
        return f"token accepted by {self.base}"

    def _next_page(self, answer: rest.Answer) -> str | None:
        for header in answer.headers.get_all("Link") or []:
            for match in _NEXT_LINK.finditer(header):
                if match.group(1).startswith(self.base + "/"):
                    return match.group(1)
        return None
