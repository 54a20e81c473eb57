"""Shared plumbing for the HTTP fakes: one ThreadingHTTPServer on 127.0.0.1 in a daemon thread.

A fake supplies one function, `Request -> Reply`; this module owns the socket, the thread and
the HTTP details, so each fake reads as the behaviour it imitates. The port is chosen by the
kernel (bind to port 0), so fakes never collide with each other or with a running service.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fake sees it."""

    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    method: str = "POST"


@dataclass(frozen=True)
class Reply:
    """What the fake answers: a JSON body (None: no body at all, as for 204), a status and
    extra headers."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of provider calls from two sweeping
    # replicas (a new connection per call) would be refused, which no real target does.
    request_queue_size = 256
    handle: Callable[[Request], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        path, _, query = self.path.partition("?")
        request = Request(
            path=path,
            query=query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            method=self.command,
        )
        try:
            reply = self.server.handle(request)
        except Exception as error:
            # A bug in a fake must show up in the test, not as a dropped connection.
            traceback.print_exc()
            reply = Reply(500, {"ok": False, "error": f"fake_server_error: {error!r}"})
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if reply.status != 204:  # a 204 carries no body, and says so by sending no length
            self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test); nothing left to tell it

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; the fakes record what matters."""


class LocalServer:
    """Serves `handle` on http://127.0.0.1:<free port> until `stop()`."""

    def __init__(self, handle: Callable[[Request], Reply], port: int = 0) -> None:
        self._handle = handle
        self._port = port  # 0: the kernel chooses; a fake restarted on its old port passes it
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not started; call start() first")
        return self._server.server_address[1]

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.handle = self._handle
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-http-{server.server_address[1]}",
            daemon=True,
        )
        self._server = server
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


class ServedFake:
    """What every fake HTTP target shares: a LocalServer in `_server`, start/stop, use as a
    context manager, and the base URL it serves."""

    _server: LocalServer

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"


@dataclass(frozen=True)
class Call:
    """A request a REST fake received: the body parsed as JSON where it is JSON."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


class RecordingFake(ServedFake):
    """A fake REST API that keeps every request it gets (`calls`), in arrival order."""

    def __init__(self) -> None:
        self._server = LocalServer(self._handle)
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def _handle(self, request: Request) -> Reply:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def _record(self, request: Request) -> Call:
        try:
            body: Any = json.loads(request.body) if request.body else None
        except ValueError:
            body = request.body.decode("latin-1")
        call = Call(request.method, request.path, request.query, request.headers, body)
        with self._lock:
            self._calls.append(call)
        return call


class Script:
    """Trouble a test asks a fake for: answer the next requests with an HTTP error status, or
    hang (so the client times out) and do nothing. Thread-safe; each entry is used once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: deque[int] = deque()
        self._pauses: deque[float] = deque()

    def fail(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._statuses.extend([status] * times)

    def hang(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._pauses.extend([seconds] * times)

    def next(self) -> tuple[int | None, float]:
        """(status to fail with or None, seconds to wait first) for the request at hand."""
        with self._lock:
            status = self._statuses.popleft() if self._statuses else None
            pause = self._pauses.popleft() if self._pauses else 0.0
        return status, pause

    def clear(self) -> None:
        with self._lock:
            self._statuses.clear()
            self._pauses.clear()


def summarize(value: Any, limit: int = 300) -> str:
    """A one-line, length-capped rendering of a recorded payload for failure messages."""
    text = json.dumps(value, default=repr, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
