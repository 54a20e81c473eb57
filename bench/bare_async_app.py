"""The async floor for bench/ack_latency.py: a bare Bolt `AsyncApp` that only acks `/prod-access`,
served by uvicorn — what a team picking Bolt for speed would start from.

Request signatures are checked as usual (Bolt's request verification); the one listener does
nothing but `await ack()`; a GET /healthz is answered in front of Bolt for the benchmark's
readiness check. Served by one uvicorn worker on its default event loop and HTTP parser:

    SLACK_SIGNING_SECRET=… SLACK_BOT_TOKEN=xoxb-… SLACK_API_URL=http://127.0.0.1:PORT/api/ \
        python -m uvicorn --workers 1 --host 127.0.0.1 --port 3002 --no-access-log \
        bench.bare_async_app:api

Needs uvicorn, and aiohttp: `slack_bolt.async_app` imports `aiohttp.web` and its client is
slack_sdk's `AsyncWebClient` (aiohttp). Both are in the `test` extra, which bench/ needs anyway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

bolt = AsyncApp(
    client=AsyncWebClient(
        token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-bench"),
        base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
        timeout=10,
    ),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@bolt.command("/prod-access")
async def on_command(ack: AsyncAck) -> None:
    await ack()


_slack = AsyncSlackRequestHandler(bolt, path="/slack/events")
_HEALTHY = json.dumps({"ok": True}).encode()


async def api(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app: /healthz for the benchmark's readiness check, everything else to Bolt."""
    if scope["type"] == "http" and scope["path"] == "/healthz" and scope["method"] == "GET":
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _HEALTHY})
        return
    await _slack(scope, receive, send)
