"""One HTTP call for the REST adapters (webhook, github_team, okta_group), standard library only.

Rules it keeps, so every adapter fails the same clear way:
- a timeout, an unreachable host, HTTP 5xx, 408 and 429 raise `ProviderError(retryable=True)`
  naming the service ("GitHub answered HTTP 502: …", "Okta timed out after 10s"); when no
  connection could be made, the URL too ("webhook unreachable at https://…: …"), so `prod-access
  check` and a failed grant say which address to look at. The URL is shown without its query
  string, fragment or user:password, which may carry secrets;
- every other answer (2xx, and 4xx such as 404) is returned, because what a 404 means is the
  adapter's business (on a revoke it means "already gone"); `refuse()` turns the rest into a
  `ProviderError(retryable=False)`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from app.providers.base import ProviderError
from app.text import short

RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the text when it is not JSON, or None when empty
    headers: Message

    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


def send(
    service: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    data: bytes | None = None,
    json_body: object = None,
    timeout: float,
) -> Answer:
    """`method url` with `headers` and an optional body: `data` as it is, or `json_body` sent
    as JSON (with its Content-Type); see the module docstring."""
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers = {**headers, "Content-Type": "application/json"}
    request = urllib.request.Request(  # noqa: S310 - the URL is validated http(s) from policy
        url, data=data, method=method, headers={"User-Agent": "prod-access", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = Answer(response.status, _decode(response.read()), response.headers)
    except urllib.error.HTTPError as exc:
        answer = Answer(exc.code, _decode(exc.read(2000)), exc.headers)
    except TimeoutError:  # connected, but no answer in time
        raise ProviderError(f"{service} timed out after {timeout:g}s") from None
    except (urllib.error.URLError, OSError) as exc:  # no connection (urllib wraps the reason)
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ProviderError(
                f"{service} timed out after {timeout:g}s connecting to {shown(url)}"
            ) from None
        raise ProviderError(f"{service} unreachable at {shown(url)}: {short(reason)}") from None
    if answer.status >= 500 or answer.status in RETRYABLE_STATUS:
        raise ProviderError(f"{service} answered HTTP {answer.status}: {short(answer.text())}")
    return answer


def shown(url: str) -> str:
    """`url` as an error may show it: scheme, host, port and path only."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def refuse(service: str, answer: Answer) -> ProviderError:
    """The error for an answer the adapter did not expect (bad token, bad request …)."""
    return ProviderError(
        f"{service} answered HTTP {answer.status}: {short(answer.text())}", retryable=False
    )


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
