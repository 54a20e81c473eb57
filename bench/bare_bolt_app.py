"""The sync floor for bench/ack_latency.py: a bare Bolt `App` that only acks `/prod-access`.

Same stack as the bot (sync Bolt `App`, `slack_bolt.adapter.wsgi.SlackRequestHandler`, request
signatures checked, `process_before_response=False`, a GET /healthz answered in front of Bolt),
but the listener does nothing except `ack()`. Served by gunicorn exactly like app/web.py serves
the bot (one worker, gthread, `--threads N`, no control socket on gunicorn >= 25.1):

    SLACK_SIGNING_SECRET=… SLACK_BOT_TOKEN=xoxb-… SLACK_API_URL=http://127.0.0.1:PORT/api/ \
        python -m gunicorn -k gthread -w 1 --threads 8 -b 127.0.0.1:3001 --no-control-socket \
        bench.bare_bolt_app:api
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

bolt = App(
    client=WebClient(
        token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-bench"),
        base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
        timeout=10,
    ),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    token_verification_enabled=False,
    process_before_response=False,
)


@bolt.command("/prod-access")
def on_command(ack: Ack) -> None:
    ack()


_slack = SlackRequestHandler(bolt, path="/slack/events")


def api(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI app: /healthz for the benchmark's readiness check, everything else to Bolt."""
    if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"ok": True}).encode()]
    return _slack(environ, start_response)
