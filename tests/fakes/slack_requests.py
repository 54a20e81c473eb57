"""Slack as a sender: builds payloads shaped like Slack's (as in Slack's API docs and
bolt-python's tests) and POSTs them to the bot's real HTTP endpoint, signed with v0 HMAC-SHA256
like Slack does. What it sent last can be sent again byte for byte (a replay) or as Slack
retries an event (signed anew)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

_counter = itertools.count(1)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Sent:
    """One request as it went out: the body and every header, the signature among them."""

    body: bytes
    headers: dict[str, str]


@dataclass
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class SlackSender:
    def __init__(self, url: str, secret: str, response_url: str) -> None:
        self.url, self.secret, self.response_url = url, secret, response_url
        self.last: Sent | None = None

    def post(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        signed: bool = True,
        content_type: str = "application/x-www-form-urlencoded",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"Content-Type": content_type, **(headers or {})}
        if signed:
            sent["X-Slack-Request-Timestamp"] = ts
            sent["X-Slack-Signature"] = signature or sign(self.secret, ts, body)
        self.last = Sent(body, sent)
        return self._deliver(self.last)

    def replay(self, sent: Sent) -> Answer:
        """Send `sent` again to this sender's URL, byte for byte, as someone who captured it
        would: the same body, timestamp and signature."""
        return self._deliver(sent)

    def _deliver(self, sent: Sent) -> Answer:
        request = urllib.request.Request(
            self.url, data=sent.body, headers=sent.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read().decode())

    # --- payloads ---
    def command_body(self, text: str, user: str) -> bytes:
        return urllib.parse.urlencode(self.command_fields(text, user)).encode()

    def command_fields(self, text: str, user: str) -> dict[str, str]:
        """A slash command's fields, as the HTTP form carries them (and Socket Mode, parsed)."""
        n = next(_counter)
        return {
            "token": "legacy-verification-token",
            "team_id": "T0TEAM",
            "team_domain": "acme",
            "channel_id": "C0INCIDENT",
            "channel_name": "incident",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/prod-access",
            "text": text,
            "api_app_id": "A0PRODACCESS",
            "response_url": self.response_url,
            "trigger_id": f"{n}.{n}.trigger",
        }

    def command(self, text: str, user: str) -> Answer:
        return self.post(self.command_body(text, user))

    def interaction(self, payload: dict[str, Any]) -> Answer:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body)

    def retry(self, sent: Sent, number: int = 1) -> Answer:
        """Slack retrying an Events API request that failed or timed out: the same body, signed
        anew at a later second, with `X-Slack-Retry-Num`."""
        then = int(sent.headers["X-Slack-Request-Timestamp"])
        return self.post(
            sent.body,
            timestamp=max(int(time.time()), then + 1),
            content_type=sent.headers["Content-Type"],
            headers={"X-Slack-Retry-Num": str(number), "X-Slack-Retry-Reason": "http_timeout"},
        )

    def interaction_event(self, event: dict[str, Any]) -> Answer:
        """An Events API callback (JSON body), e.g. app_home_opened."""
        body = json.dumps(
            {
                "token": "legacy-verification-token",
                "team_id": "T0TEAM",
                "api_app_id": "A0PRODACCESS",
                "type": "event_callback",
                "event_id": f"Ev{next(_counter)}",
                "event_time": int(time.time()),
                "event": {**event, "event_ts": f"{time.time():.6f}"},
            }
        ).encode()
        return self.post(body, content_type="application/json")

    def _interaction(self, kind: str, user: str, **fields: Any) -> Answer:
        """Every interaction payload carries the same envelope: type, team, user, app, token."""
        n = next(_counter)
        return self.interaction(
            {
                "type": kind,
                "team": {"id": "T0TEAM", "domain": "acme"},
                "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
                "api_app_id": "A0PRODACCESS",
                "token": "legacy-verification-token",
                "trigger_id": f"{n}.{n}.trigger",
                **fields,
            }
        )

    def click(
        self,
        action_id: str,
        value: str,
        user: str,
        *,
        channel: str = "C0APPROVALS",
        message_ts: str = "1700000000.000100",
    ) -> Answer:
        """A button on a message (the card, a DM) was clicked."""
        return self._interaction(
            "block_actions",
            user,
            container={
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            channel={"id": channel, "name": "approvals"},
            message={"type": "message", "ts": message_ts, "text": "card"},
            response_url=self.response_url,
            actions=[
                {
                    "action_id": action_id,
                    "block_id": "blk",
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        )

    def view_payload(self, view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        return {
            **view,
            "id": view.get("id", "V0MODAL"),
            "hash": view.get("hash", "1700000000.abc"),
            "state": {"values": values},
        }

    def modal_select(
        self, view: dict[str, Any], values: dict[str, Any], action_id: str, block_id: str, user: str
    ) -> Answer:
        """A select inside the modal changed (dispatch_action)."""
        return self._interaction(
            "block_actions",
            user,
            container={"type": "view", "view_id": view.get("id", "V0MODAL")},
            view=self.view_payload(view, values),
            actions=[
                {
                    "type": "static_select",
                    "action_id": action_id,
                    "block_id": block_id,
                    "selected_option": values[block_id][action_id]["selected_option"],
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        )

    def submit(self, view: dict[str, Any], values: dict[str, Any], user: str) -> Answer:
        return self._interaction(
            "view_submission", user, view=self.view_payload(view, values), response_urls=[]
        )


def select(value: str, action_id: str) -> dict[str, Any]:
    return {action_id: {"type": "static_select", "selected_option": {"value": value}}}


def text_input(value: str, action_id: str) -> dict[str, Any]:
    return {action_id: {"type": "plain_text_input", "value": value}}
