"""A fake Splunk HTTP Event Collector on 127.0.0.1, strict where Splunk is strict.

`POST /services/collector/event` (and `/services/collector`) takes HEC's batch format: event
objects one after the other (whitespace between them, no array, no commas). Like Splunk it
answers
- 401 `{"text": "Token is required", "code": 2}` without an Authorization header, 401 code 3
  ("Invalid authorization") when it is not `Splunk <token>`, 403 code 4 ("Invalid token") for
  a token it does not know;
- 400 code 6 ("Invalid data format") for a body that is not JSON objects, code 12 ("Event field
  is required") for an object without `event`, code 15 ("Error in handling indexed fields")
  when `fields` is not an object of strings;
- 200 `{"text": "Success", "code": 0}` otherwise, and then keeps the batch (`objects`, and each
  object's `event` in `events`).
`GET /services/collector/health` answers 200 code 17 ("HEC is healthy").

For outages: `busy(times)` answers 503 code 9 ("Server is busy"); `stop()` then `restart()`
brings it back on the same port. It counts requests in flight at once (`max_in_flight`), and
`pause` holds each request that long, so overlapping senders would show.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from .local_server import LocalServer, Reply, Request, Script, ServedFake

EVENT_PATHS = ("/services/collector/event", "/services/collector")


class HecReceiver(ServedFake):
    def __init__(self, token: str, pause: float = 0.0) -> None:
        self.token = token
        self.pause = pause
        self.script = Script()
        self._server = LocalServer(self._handle)
        self._lock = threading.Lock()
        self.objects: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self._in_flight = 0
        self.max_in_flight = 0

    @property
    def url(self) -> str:
        return self.base_url + "/services/collector/event"

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [obj["event"] for obj in self.objects]

    def busy(self, times: int = 1) -> None:
        self.script.fail(503, times)

    def restart(self) -> None:
        """Start again on the port it had (after `stop()`), as a restarted Splunk would."""
        self._server = LocalServer(self._handle, port=self.port_before_stop)
        self._server.start()

    def stop(self) -> None:
        self.port_before_stop = self._server.port
        super().stop()

    def _handle(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/services/collector/health":
            return Reply(200, {"text": "HEC is healthy", "code": 17})
        if request.method != "POST" or request.path not in EVENT_PATHS:
            return Reply(404, {"text": "The requested URL was not found", "code": 404})
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            time.sleep(self.pause)
            return self._answer(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, request: Request) -> Reply:
        authorization = request.headers.get("authorization")
        if authorization is None:
            return Reply(401, {"text": "Token is required", "code": 2})
        scheme, _, token = authorization.partition(" ")
        if scheme != "Splunk" or not token:
            return Reply(401, {"text": "Invalid authorization", "code": 3})
        if token != self.token:
            return Reply(403, {"text": "Invalid token", "code": 4})
        status, _ = self.script.next()
        if status is not None:
            return Reply(status, {"text": "Server is busy", "code": 9})
        objects = _concatenated_objects(request.body)
        if objects is None:
            return Reply(400, {"text": "Invalid data format", "code": 6})
        for obj in objects:
            if "event" not in obj:
                return Reply(400, {"text": "Event field is required", "code": 12})
            fields = obj.get("fields", {})
            if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
                return Reply(400, {"text": "Error in handling indexed fields", "code": 15})
        with self._lock:
            self.requests.append(request)
            self.objects.extend(objects)
        return Reply(200, {"text": "Success", "code": 0})


def _concatenated_objects(body: bytes) -> list[dict[str, Any]] | None:
    """The JSON objects of a HEC batch, or None when it is not one."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    objects, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return objects or None
        try:
            obj, at = decoder.raw_decode(text, at)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        objects.append(obj)
