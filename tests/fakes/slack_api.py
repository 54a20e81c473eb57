"""A fake Slack Web API on 127.0.0.1 that records every call and answers like Slack.

Point slack_sdk at it with `WebClient(token="xoxb-…", base_url=fake.url)`; Bolt uses the same
client. slack_sdk POSTs to `base_url + method`, as JSON for most write methods and as a
form body for others; both are parsed into `Call.args`, and form fields that carry JSON
(`blocks`, `view`, `attachments`, `metadata`) are decoded so tests assert on objects, not strings.

Rules it relies on (Slack's, kept here so tests catch what Slack would refuse):
- every Web API call needs `Authorization: Bearer xoxb-…`, else `not_authed` / `invalid_auth`;
- answers are HTTP 200 with `{"ok": …}` unless `fail()` asks for an HTTP error (a 429 carries
  `Retry-After`);
- `response_url`s (from `response_url()`) take JSON without a token, like Slack's;
- `apps.connections.open` (Socket Mode) needs the app-level token, `Authorization: Bearer
  xapp-…` (a bot token gets `not_allowed_token_type`), and answers the WebSocket URL set in
  `socket_mode_url` (tests run their own WebSocket server; see tests/test_socket_mode.py).

`hold(*methods)` makes calls to those methods wait, unanswered, until `release()` (or
`clear()`): a Slack that hangs, for tests that show nothing else waits for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .local_server import LocalServer, Reply, Request, ServedFake, summarize

TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
USER_TZ = "Europe/Berlin"
JSON_FORM_FIELDS = ("blocks", "view", "attachments", "metadata")
VIEW_METHODS = ("views.open", "views.update", "views.push", "views.publish")
RESPONSE_URL = "response_url"
CONNECTIONS_OPEN = "apps.connections.open"
HOLD_LIMIT_SECONDS = 60  # a held call is answered after this even if nobody releases it


@dataclass
class Call:
    """One request the fake received: the API method (or "response_url"), its arguments and
    its headers (lower-case names)."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class _Failure:
    error: str
    status: int


def _parse_args(request: Request) -> dict[str, Any]:
    """Query string plus body, whichever way slack_sdk encoded it."""
    args: dict[str, Any] = dict(parse_qsl(request.query, keep_blank_values=True))
    content_type = request.headers.get("content-type", "")
    if "application/json" in content_type:
        decoded = json.loads(request.body or b"{}")
        if isinstance(decoded, dict):
            args.update(decoded)
        return args
    args.update(parse_qsl(request.body.decode(), keep_blank_values=True))
    for name in JSON_FORM_FIELDS:
        value = args.get(name)
        if isinstance(value, str):
            # Slack would refuse invalid JSON; keep the raw string so the test can see why.
            with contextlib.suppress(ValueError):
                args[name] = json.loads(value)
    return args


class FakeSlack(ServedFake):
    """A recording fake of the Slack Web API; see the module docstring.

    `users` maps user ids to `{"email": …, "name": …}` (optionally `"tz"`), answered by
    `users.info`; it stays editable as `fake.users`. `channels` maps channel ids to
    `{"name": …, "is_member": …}` (optionally `"is_private"`, `"is_archived"`), answered by
    `conversations.info` (unknown ids: `channel_not_found`); `clear()` resets it to
    `default_channels()`. `socket_mode_url` is the `url` that
    `apps.connections.open` answers (e.g. `ws://127.0.0.1:PORT/link`); while it is None that
    method answers `{"ok": false, "error": "fake_socket_mode_url_not_set"}`.
    """

    def __init__(self, users: dict[str, dict] | None = None) -> None:
        self.users: dict[str, dict] = dict(users or {})
        self.socket_mode_url: str | None = None
        self.channels: dict[str, dict[str, Any]] = default_channels()
        # user groups by handle: {"sre-leads": {"id": "S0SRE", "users": ["U0LEAD1"]}}
        self.groups: dict[str, dict[str, Any]] = {}
        self._server = LocalServer(self._handle)
        self._changed = threading.Condition()
        self._calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}  # file id -> bytes sent to the upload URL
        self._failures: dict[str, deque[_Failure]] = {}
        self._serial = itertools.count(1)
        self._held_methods: frozenset[str] = frozenset()
        self._released = threading.Event()
        self._released.set()
        self._waiting = 0  # calls held right now

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The `base_url` for slack_sdk, e.g. `http://127.0.0.1:PORT/api/`."""
        return self.base_url + "/api/"

    def response_url(self, key: str = "r") -> str:
        """A response_url on this server; POSTs to it are recorded as method "response_url"."""
        return f"{self.base_url}/response/{key}"

    # -- what tests read and arrange --------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every call so far, in arrival order."""
        with self._changed:
            return list(self._calls)

    def calls_to(self, method: str) -> list[dict]:
        """The args of every call to `method`, in order."""
        return [call.args for call in self.calls if call.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[dict], bool] | None = None,
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[dict]:
        """Block until at least `count` calls to `method` match `predicate` (calls already
        recorded count too); return the args of all matching calls so far."""

        def matching() -> list[dict]:
            return [
                call.args
                for call in self._calls
                if call.method == method and (predicate is None or predicate(call.args))
            ]

        with self._changed:
            if self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                return matching()
            found = len(matching())
            seen = list(self._calls)
        lines = [f"  {call.method} {summarize(call.args)}" for call in seen] or ["  (none)"]
        condition = " matching the predicate" if predicate else ""
        raise AssertionError(
            f"waited {timeout}s for {count} call(s) to {method}{condition}, got {found}.\n"
            f"Calls seen ({len(seen)}):\n" + "\n".join(lines)
        )

    def hold(self, *methods: str) -> None:
        """Calls to `methods` from now on wait, unanswered, until `release()`."""
        with self._changed:
            self._held_methods = frozenset(methods)
            self._released.clear()

    def release(self) -> None:
        """Let held calls (and later ones) through: they are answered as usual."""
        with self._changed:
            self._held_methods = frozenset()
            self._released.set()

    def held(self) -> int:
        """How many calls are waiting, unanswered, right now."""
        with self._changed:
            return self._waiting

    def clear(self) -> None:
        """Forget recorded calls, any failures still pending from `fail()` and the
        `socket_mode_url`; `channels` goes back to `default_channels()`; held calls go on."""
        self.release()
        with self._changed:
            self._calls.clear()
            self._failures.clear()
            self.socket_mode_url = None
            self.uploads.clear()
            self.channels = default_channels()
            self.groups = {}

    def fail(
        self, method: str, error: str = "internal_error", times: int = 1, status: int = 200
    ) -> None:
        """Make the next `times` calls to `method` (or "response_url") fail: with status 200 the
        answer is `{"ok": false, "error": error}`; otherwise that HTTP status with the same
        body (a 429 also carries `Retry-After: 1`)."""
        with self._changed:
            queue = self._failures.setdefault(method, deque())
            queue.extend(_Failure(error, status) for _ in range(times))

    # -- serving ----------------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if request.path.startswith("/api/"):
            method = request.path.removeprefix("/api/")
            args = _parse_args(request)
            self._record(Call(method, args, request.headers))
            self._wait_if_held(method)
            authorization = request.headers.get("authorization", "")
            if not authorization:
                return Reply(body={"ok": False, "error": "not_authed"})
            if method == CONNECTIONS_OPEN:
                return self._injected_failure(method) or Reply(
                    body=self._connections_open(authorization)
                )
            if not authorization.startswith("Bearer xoxb-"):
                return Reply(body={"ok": False, "error": "invalid_auth"})
            return self._injected_failure(method) or Reply(body=self._answer(method, args))
        if request.path.startswith("/upload/"):  # files_upload_v2's second step, no token
            file_id = request.path.removeprefix("/upload/")
            with self._changed:
                self.uploads[file_id] = request.body
            self._record(Call("upload", {"file_id": file_id, "bytes": len(request.body)}, {}))
            return Reply(body={"ok": True})
        if request.path.startswith("/response/"):
            key = request.path.removeprefix("/response/")
            args = {**_parse_args(request), "_key": key}
            self._record(Call(RESPONSE_URL, args, request.headers))
            return self._injected_failure(RESPONSE_URL) or Reply()
        return Reply(404, {"ok": False, "error": "unknown_path"})

    def _record(self, call: Call) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _wait_if_held(self, method: str) -> None:
        with self._changed:
            if method not in self._held_methods:
                return
            self._waiting += 1
        try:
            self._released.wait(HOLD_LIMIT_SECONDS)
        finally:
            with self._changed:
                self._waiting -= 1

    def _injected_failure(self, method: str) -> Reply | None:
        with self._changed:
            queue = self._failures.get(method)
            if not queue:
                return None
            failure = queue.popleft()
        headers = {"Retry-After": "1"} if failure.status == 429 else {}
        return Reply(failure.status, {"ok": False, "error": failure.error}, headers)

    def _next_serial(self) -> int:
        with self._changed:
            return next(self._serial)

    def _next_ts(self) -> str:
        micros = 1_700_000_000_000_000 + 100 * self._next_serial()
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://fake-team.slack.com/",
                "team": "Fake Team",
                "user": "prod-access",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        if method == "conversations.info":
            return self._conversation_info(str(args.get("channel", "")))
        if method == "chat.postMessage":
            channel = str(args.get("channel") or "")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            if channel[0] in "UW":  # Slack opens the DM for a user id given as channel
                channel = "D" + channel
            ts = self._next_ts()
            return {"ok": True, "channel": channel, "ts": ts, "message": _message(args, ts)}
        if method == "chat.update":
            ts = args.get("ts")
            return {
                "ok": True,
                "channel": args.get("channel"),
                "ts": ts,
                "text": args.get("text", ""),
                "message": _message(args, ts),
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method in VIEW_METHODS:
            view = args.get("view")
            if not isinstance(view, dict):
                return {"ok": False, "error": "invalid_arguments"}
            serial = self._next_serial()
            view_id = args.get("view_id") if method == "views.update" else None
            digest = hashlib.sha256(f"{serial}".encode()).hexdigest()[:16]
            return {
                "ok": True,
                "view": {
                    **view,
                    "id": view_id or f"V{serial:010d}",
                    "hash": f"1700000000.{digest}",
                },
            }
        if method == "users.info":
            return self._user_info(str(args.get("user", "")))
        if method == "users.list":  # one page: everyone in `users`
            members = [self._user_info(user)["user"] for user in list(self.users)]
            return {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{self._next_serial():010d}"
            base = self.url.removesuffix("api/")
            return {"ok": True, "upload_url": f"{base}upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files")
            files = json.loads(files) if isinstance(files, str) else files or []
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "usergroups.list":
            with self._changed:
                groups = dict(self.groups)
            return {
                "ok": True,
                "usergroups": [
                    {"id": g["id"], "handle": handle, "name": handle, "date_delete": 0}
                    for handle, g in groups.items()
                ],
            }
        if method == "usergroups.users.list":
            with self._changed:
                group = next(
                    (g for g in self.groups.values() if g["id"] == args.get("usergroup")), None
                )
            if group is None:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(group["users"])}
        if method == "conversations.open":
            user = str(args.get("users", "")).split(",")[0].strip()
            return {"ok": True, "channel": {"id": args.get("channel") or "D" + user}}
        return {"ok": True}

    def _connections_open(self, authorization: str) -> dict[str, Any]:
        """Socket Mode: only an app-level token may open a connection."""
        if authorization.startswith("Bearer xoxb-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if not authorization.startswith("Bearer xapp-"):
            return {"ok": False, "error": "invalid_auth"}
        with self._changed:
            url = self.socket_mode_url
        if url is None:
            return {"ok": False, "error": "fake_socket_mode_url_not_set"}
        return {"ok": True, "url": url}

    def _conversation_info(self, channel_id: str) -> dict[str, Any]:
        """A channel from `channels`, as the bot sees it (`is_member`: is the bot in it?)."""
        with self._changed:
            channel = self.channels.get(channel_id)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        name = channel.get("name", channel_id.lower())
        return {
            "ok": True,
            "channel": {
                "id": channel_id,
                "name": name,
                "name_normalized": name,
                "is_channel": True,
                "is_private": channel.get("is_private", False),
                "is_archived": channel.get("is_archived", False),
                "is_member": channel.get("is_member", False),
                "context_team_id": TEAM_ID,
            },
        }

    def _user_info(self, user_id: str) -> dict[str, Any]:
        user = self.users.get(user_id)
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        name = user.get("name", user_id)
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": name,
                "tz": user.get("tz", USER_TZ),
                "is_bot": False,
                "deleted": False,
                "profile": {
                    "email": user.get("email"),
                    "real_name": name,
                    "display_name": name,
                },
            },
        }


def default_channels() -> dict[str, dict[str, Any]]:
    """The tests' approver channel, with the bot in it."""
    return {"C0APPROVALS": {"name": "approvals", "is_member": True}}


def _message(args: dict[str, Any], ts: Any) -> dict[str, Any]:
    """The message object Slack echoes back for a post or an update."""
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "ts": ts,
        "text": args.get("text", ""),
    }
    for name in ("blocks", "attachments", "metadata", "thread_ts"):
        if name in args:
            message[name] = args[name]
    return message
