"""A fake HTTP target for the webhook provider: records each signed POST and answers as told.

The provider signs every body with `X-Prod-Access-Signature: sha256=<hex HMAC-SHA256 of
"<X-Prod-Access-Timestamp>.<raw body>">`; each `Received` says whether that signature checks
out against the receiver's secret, so tests can prove both the payload and the signing.
By default it answers 200 `{"ok": true}`; `respond_with()` and `delay()` script failures
and timeouts for the next requests.

Like a real target it keeps state: a validly signed grant that it answers with 2xx adds
(identity, grant) to what is held, a revoke removes it, and a "check" is answered with
`{"present": …}` from that state. `hold()` and `release()` change it behind the bot's back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .local_server import LocalServer, Reply, Request, ServedFake, summarize

SIGNATURE_HEADER = "x-prod-access-signature"
TIMESTAMP_HEADER = "x-prod-access-timestamp"


@dataclass
class Received:
    """One request as the target got it: the parsed JSON body (empty if it was not JSON),
    the raw bytes, the headers (lower-case names) and whether the signature is valid."""

    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    signature_valid: bool


class WebhookReceiver(ServedFake):
    """Serves `POST http://127.0.0.1:PORT/hook` and records what arrives."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._server = LocalServer(self._handle)
        self._changed = threading.Condition()
        self._requests: list[Received] = []
        self._statuses: deque[tuple[int, bool]] = deque()
        self._delays: deque[float] = deque()
        self._held: set[tuple[str, str]] = set()

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base_url + "/hook"

    # -- what tests read and arrange --------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        """A snapshot of every request so far, in arrival order."""
        with self._changed:
            return list(self._requests)

    def actions(self) -> list[str]:
        """The `action` of every change asked for so far ("grant", "revoke"), in order; checks
        only read, and are left out (they are in `requests`)."""
        actions = [str(received.body.get("action", "")) for received in self.requests]
        return [action for action in actions if action != "check"]

    def held(self) -> set[tuple[str, str]]:
        """What the target holds right now: (identity, grant) pairs."""
        with self._changed:
            return set(self._held)

    def hold(self, identity: str, grant: str) -> None:
        """Grant access directly at the target, as an admin would, without the bot."""
        with self._changed:
            self._held.add((identity, grant))

    def release(self, identity: str, grant: str) -> None:
        """Take access away directly at the target, without the bot."""
        with self._changed:
            self._held.discard((identity, grant))

    def respond_with(self, status: int, times: int = 1, *, applied: bool = False) -> None:
        """Answer the next `times` requests with HTTP `status`. `applied`: a failing status
        still makes the change (a target that did the work and then lost its answer)."""
        with self._changed:
            self._statuses.extend([(status, applied)] * times)

    def delay(self, seconds: float, times: int = 1) -> None:
        """Sleep `seconds` before answering each of the next `times` requests (they are
        recorded on arrival, so a request the client gave up on still shows)."""
        with self._changed:
            self._delays.extend([seconds] * times)

    def clear(self) -> None:
        """Forget recorded requests and any scripted statuses or delays still pending."""
        with self._changed:
            self._requests.clear()
            self._statuses.clear()
            self._delays.clear()
            self._held.clear()

    def wait_for(
        self, count: int = 1, action: str | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """Block until at least `count` requests (with that `action`, if given) have arrived,
        counting those already recorded; return all matching requests so far."""

        def matching() -> list[Received]:
            return [r for r in self._requests if action is None or r.body.get("action") == action]

        with self._changed:
            if self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                return matching()
            found = len(matching())
            seen = list(self._requests)
        lines = [
            f"  signature_valid={r.signature_valid} {summarize(r.body or r.raw.decode('latin-1'))}"
            for r in seen
        ] or ["  (none)"]
        wanted = f" with action {action!r}" if action else ""
        raise AssertionError(
            f"waited {timeout}s for {count} webhook request(s){wanted}, got {found}.\n"
            f"Requests seen ({len(seen)}):\n" + "\n".join(lines)
        )

    # -- serving ----------------------------------------------------------------------------

    def _signature_valid(self, raw: bytes, headers: dict[str, str]) -> bool:
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not timestamp or not signature:
            return False
        digest = hmac.new(self.secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
        return hmac.compare_digest(signature, "sha256=" + digest.hexdigest())

    def _handle(self, request: Request) -> Reply:
        if request.path != "/hook":
            return Reply(404, {"ok": False, "error": "unknown_path"})
        try:
            decoded = json.loads(request.body)
        except ValueError:
            decoded = None
        received = Received(
            body=decoded if isinstance(decoded, dict) else {},
            raw=request.body,
            headers=request.headers,
            signature_valid=self._signature_valid(request.body, request.headers),
        )
        with self._changed:
            self._requests.append(received)
            self._changed.notify_all()
            status, applied = self._statuses.popleft() if self._statuses else (200, False)
            pause = self._delays.popleft() if self._delays else 0.0
            present = self._apply(received) if status < 400 or applied else False
        if pause:
            time.sleep(pause)
        if status >= 400:
            return Reply(status, {"ok": False, "error": f"scripted HTTP {status}"})
        if received.body.get("action") == "check":
            return Reply(status, {"ok": True, "present": present})
        return Reply(status)

    def _apply(self, received: Received) -> bool:
        """Change the held state for a validly signed grant or revoke; whether the access is
        held afterwards."""
        user = received.body.get("user")
        identity = str(user.get("identity")) if isinstance(user, dict) else ""
        key = (identity, str(received.body.get("grant", "")))
        action = received.body.get("action")
        if received.signature_valid and action == "grant":
            self._held.add(key)
        elif received.signature_valid and action == "revoke":
            self._held.discard(key)
        return key in self._held
