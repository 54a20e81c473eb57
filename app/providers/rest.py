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

`KeepAlive` makes the same calls over HTTP/1.1 connections it keeps open between calls (the
webhook adapter, whose expiry sweep makes hundreds of calls to one endpoint in a burst): opening
a TCP (and TLS) connection per call was most of a revoke's CPU.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
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


class KeepAlive:
    """`send` over kept-alive connections: a call takes an idle connection to the same origin
    (or opens one), and gives it back after reading the whole answer unless the server said it
    will close it. Same errors as `send`, with two differences: a redirect is returned as the
    answer it is (urllib followed it, turning a POST into a GET), and a call that fails on a
    reused connection before any answer (the server closed it while idle) is sent once more on
    a new one; the adapters' calls are safe to repeat. Through a proxy (HTTP(S)_PROXY) every
    call goes through `send`."""

    def __init__(self, service: str, *, max_idle: int = 512, idle_seconds: float = 15.0) -> None:
        self.service = service
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple[str, str, int], list[tuple[http.client.HTTPConnection, float]]] = {}
        self._proxied: dict[tuple[str, str, int], bool] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
        timeout: float,
    ) -> Answer:
        parts = urllib.parse.urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port or _PORTS.get(parts.scheme, 0))
        if parts.scheme not in _PORTS or parts.username or self._through_proxy(origin):
            return send(self.service, method, url, headers=headers, data=data, timeout=timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": "prod-access", **headers}
        for reused in (True, False):
            connection = self._take(origin) if reused else None
            if reused and connection is None:
                continue
            if connection is None:
                connection = self._open(origin, url, timeout)
            try:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request(method, target, body=data, headers=headers)
                _ack_at_once(connection)
                response = connection.getresponse()
                raw = response.read()
            except TimeoutError:
                connection.close()
                raise ProviderError(f"{self.service} timed out after {timeout:g}s") from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if reused:
                    continue  # most likely closed by the server while idle: once more, anew
                raise ProviderError(
                    f"{self.service} unreachable at {shown(url)}: {short(exc)}"
                ) from None
            answer = Answer(response.status, _decode(raw), response.msg)
            if response.will_close:
                connection.close()
            else:
                self._give_back(origin, connection)
            if answer.status >= 500 or answer.status in RETRYABLE_STATUS:
                raise ProviderError(
                    f"{self.service} answered HTTP {answer.status}: {short(answer.text())}"
                )
            return answer
        raise AssertionError("unreachable")  # the second pass returns or raises

    def close(self) -> None:
        """Close the idle connections (calls in flight keep theirs until they finish)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection, _ in connections:
                connection.close()

    def _through_proxy(self, origin: tuple[str, str, int]) -> bool:
        proxied = self._proxied.get(origin)
        if proxied is None:
            scheme, host, _ = origin
            proxies = urllib.request.getproxies()
            proxied = scheme in proxies and not urllib.request.proxy_bypass(host)
            self._proxied[origin] = proxied
        return proxied

    def _take(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        stale = []
        found = None
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                connection, since = idle.pop()
                if time.monotonic() - since < self.idle_seconds:
                    found = connection
                    break
                stale.append(connection)
        for connection in stale:
            connection.close()
        return found

    def _give_back(
        self, origin: tuple[str, str, int], connection: http.client.HTTPConnection
    ) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append((connection, time.monotonic()))
                return
        connection.close()

    def _open(
        self, origin: tuple[str, str, int], url: str, timeout: float
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.connect()
        except TimeoutError:
            connection.close()
            raise ProviderError(
                f"{self.service} timed out after {timeout:g}s connecting to {shown(url)}"
            ) from None
        except OSError as exc:
            connection.close()
            raise ProviderError(
                f"{self.service} unreachable at {shown(url)}: {short(exc)}"
            ) from None
        return connection


_PORTS = {"http": 80, "https": 443}


def _ack_at_once(connection: http.client.HTTPConnection) -> None:
    """Acknowledge the answer's first segment at once (Linux's TCP_QUICKACK, which lasts only
    a while, so it is set before each answer). A server that writes an answer's headers and
    body separately without TCP_NODELAY, as Python's http.server does, holds the body until
    the headers are acknowledged: on a kept-alive connection the kernel delays that ACK by
    40 ms, which made every call 40 ms slower than on a new connection."""
    if _QUICKACK is not None and connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


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
