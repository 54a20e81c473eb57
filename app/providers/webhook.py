"""Webhook provider: POST signed JSON to a team's own endpoint, which applies the access.

Body: {"action", "session_id", "request_id", "system", "role", "grant", "user": {"slack_id",
"email", "identity"}, "ticket", "reason", "expires_at"}. Headers: X-Prod-Access-Timestamp,
X-Prod-Access-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">, and
Idempotency-Key: <session_id>:<action>, so the receiver can drop a repeat. 2xx is success;
anything else, or a timeout, is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import time
import urllib.error
import urllib.request

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers.base import AccessGrant, ProviderConfigError, ProviderError, short


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    secret_env: str = Field(min_length=1)
    timeout: float = Field(default=10.0, gt=0, le=120)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def payload(action: str, access: AccessGrant) -> dict[str, object]:
    return {
        "action": action,
        "session_id": access.session_id,
        "request_id": access.request_id,
        "system": access.system,
        "role": access.role,
        "grant": access.grant,
        "user": {"slack_id": access.slack_id, "email": access.email, "identity": access.identity},
        "ticket": access.ticket,
        "reason": access.reason,
        "expires_at": access.expires_at.isoformat().replace("+00:00", "Z")
        if access.expires_at
        else None,
    }


class WebhookProvider:
    Config = WebhookConfig

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        if not os.environ.get(config.secret_env):
            raise ProviderConfigError(f"environment variable {config.secret_env} is not set")

    def _post(self, action: str, access: AccessGrant) -> None:
        body = json.dumps(payload(action, access), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        secret = os.environ.get(self.config.secret_env, "")
        request = urllib.request.Request(  # noqa: S310 - the URL is validated http(s) from policy
            str(self.config.url),
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "prod-access",
                "X-Prod-Access-Timestamp": timestamp,
                "X-Prod-Access-Signature": sign(secret, timestamp, body),
                "Idempotency-Key": f"{access.session_id}:{action}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read(300).decode("utf-8", "replace")
            retryable = exc.code >= 500 or exc.code in (408, 429)
            raise ProviderError(
                f"webhook answered HTTP {exc.code}: {short(text)}", retryable=retryable
            ) from None
        except TimeoutError:
            raise ProviderError(f"webhook timed out after {self.config.timeout:g}s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError | socket.timeout):
                raise ProviderError(f"webhook timed out after {self.config.timeout:g}s") from None
            raise ProviderError(f"webhook unreachable: {short(reason)}") from None

    def grant(self, access: AccessGrant) -> None:
        self._post("grant", access)

    def revoke(self, access: AccessGrant) -> None:
        self._post("revoke", access)
