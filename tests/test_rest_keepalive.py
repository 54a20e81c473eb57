"""rest.KeepAlive: the webhook adapter's calls reuse HTTP/1.1 connections, and fail exactly as
`rest.send` does (unreachable, timed out, 5xx); a connection the server closed while idle is
replaced without the call failing."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.providers import rest
from app.providers.base import ProviderError
from tests.fakes.serve import free_port


class _Target:
    """An HTTP/1.1 target that keeps connections open, counts them, and answers as told."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str, bytes]] = []
        self.status = 200
        self.close_after_answer = False
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                target.connections += 1

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target.requests.append((self.command, self.path, body))
                payload = json.dumps({"present": False}).encode()
                self.send_response(target.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if target.close_after_answer:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?team=a"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[_Target]:
    served = _Target()
    yield served
    served.stop()


def _post(client: rest.KeepAlive, url: str, n: int = 0, timeout: float = 2) -> rest.Answer:
    return client.send("POST", url, headers={"X-N": str(n)}, data=b'{"n": %d}' % n, timeout=timeout)


def test_calls_reuse_one_connection_and_send_path_query_and_body(target: _Target) -> None:
    client = rest.KeepAlive("webhook")
    answers = [_post(client, target.url, n) for n in range(5)]
    assert [a.status for a in answers] == [200] * 5
    assert answers[0].body == {"present": False}
    assert answers[0].headers["Content-Type"] == "application/json"
    assert target.connections == 1
    assert target.requests[3] == ("POST", "/hook?team=a", b'{"n": 3}')
    client.close()


def test_a_connection_the_server_closes_is_not_reused(target: _Target) -> None:
    client = rest.KeepAlive("webhook")
    target.close_after_answer = True
    for n in range(3):
        assert _post(client, target.url, n).status == 200
    assert target.connections == 3


def test_a_connection_closed_while_idle_is_replaced_and_the_call_succeeds(
    target: _Target,
) -> None:
    client = rest.KeepAlive("webhook")
    assert _post(client, target.url, 1).status == 200
    for connections in client._idle.values():  # the server (or a middlebox) dropped it
        for connection, _ in connections:
            assert connection.sock is not None
            connection.sock.shutdown(socket.SHUT_RDWR)
    assert _post(client, target.url, 2).status == 200
    assert [body for _, _, body in target.requests] == [b'{"n": 1}', b'{"n": 2}']


def test_errors_read_as_rest_send_says_them(target: _Target) -> None:
    client = rest.KeepAlive("webhook")
    down = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(ProviderError) as unreachable:
        _post(client, down)
    assert str(unreachable.value).startswith(f"webhook unreachable at {down}: ")
    assert unreachable.value.retryable

    target.status = 503
    with pytest.raises(ProviderError) as failing:
        _post(client, target.url)
    assert str(failing.value).startswith("webhook answered HTTP 503: ")
    target.status = 404  # the adapter's business: returned as it is
    assert _post(client, target.url).status == 404


def test_a_target_that_does_not_answer_in_time_is_a_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        with pytest.raises(ProviderError) as timeout:
            _post(rest.KeepAlive("webhook"), url, timeout=0.2)
        assert str(timeout.value) == "webhook timed out after 0.2s"
        assert timeout.value.retryable
    finally:
        listener.close()


def test_through_a_proxy_every_call_goes_through_send(
    target: _Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setattr(
        rest,
        "send",
        lambda service, method, url, **_: sent.append(url) or rest.Answer(200, None, None),
    )
    assert _post(rest.KeepAlive("webhook"), target.url).status == 200
    assert sent == [target.url] and target.requests == []
