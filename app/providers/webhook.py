"""Webhook provider: POST signed JSON to a team's own endpoint, which applies the access.

Body: {"action", "session_id", "request_id", "system", "role", "grant", "user": {"slack_id",
"email", "identity"}, "ticket", "reason", "expires_at"}, action "grant", "revoke" or "check".
Headers: X-Prod-Access-Timestamp, X-Prod-Access-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">, and Idempotency-Key: <session_id>:<action>, so the receiver can drop a
repeat. 2xx is success; anything else, or a timeout, is a failure. A "check" is answered with
2xx and `{"present": true|false}`: does the user hold the grant right now?

Calls reuse HTTP/1.1 connections to the endpoint (`rest.KeepAlive`): the expiry sweep sends a
revoke and a check for each of hundreds of sessions in a burst.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers import rest
from app.providers.base import AccessGrant, ProviderError, env_secret, payload


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    secret_env: str = Field(min_length=1)
    timeout: float = Field(default=10.0, gt=0, le=120)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookProvider:
    Config = WebhookConfig

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._secret = env_secret(config.secret_env)
        self._http = rest.KeepAlive("webhook")

    def _post(self, action: str, access: AccessGrant) -> rest.Answer:
        body = json.dumps(payload(action, access), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        answer = self._http.send(
            "POST",
            str(self.config.url),
            data=body,
            timeout=self.config.timeout,
            headers={
                "Content-Type": "application/json",
                "X-Prod-Access-Timestamp": timestamp,
                "X-Prod-Access-Signature": sign(self._secret, timestamp, body),
                "Idempotency-Key": f"{access.session_id}:{action}",
            },
        )
        if not 200 <= answer.status < 300:
            raise rest.refuse("webhook", answer)
        return answer

    def grant(self, access: AccessGrant) -> None:
        self._post("grant", access)

    def revoke(self, access: AccessGrant) -> None:
        self._post("revoke", access)

    def check(self, access: AccessGrant) -> bool:
        body = self._post("check", access).body
        present = body.get("present") if isinstance(body, dict) else None
        if not isinstance(present, bool):
            raise ProviderError(
                'webhook answered a check without {"present": true|false}', retryable=False
            )
        return present

    def probe(self) -> str:
        """Is the endpoint there? A plain GET, so the signed contract is untouched: any answer
        below HTTP 500 proves it; a refused connection, a timeout or a 5xx does not."""
        answer = rest.send(
            "webhook", "GET", str(self.config.url), headers={}, timeout=self.config.timeout
        )
        return f"reachable (GET answered HTTP {answer.status})"
