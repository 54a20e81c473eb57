"""Step-up in Socket Mode: the real `serve --socket` process also listens on $PORT for the
browser (/step-up/… and /healthz), and a stepped-up Approve grants end to end."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import requests

from tests.conftest import BOB, LEAD1, eventually
from tests.fakes.oidc_provider import FakeOidcProvider
from tests.fakes.serve import free_port
from tests.fakes.slack_api import FakeSlack
from tests.fakes.step_up import link_in, step_up_env, write_step_up_policy
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.test_socket_mode import (
    WORK_TIMEOUT,
    BotProcess,
    SocketModeServer,
    _ack_text,
    _click,
    _command,
    _one,
    env,
    socket_server,
    start_bot,
)

__all__ = ["env", "socket_server", "start_bot"]


def test_serve_socket_serves_step_up_pages_on_port_and_the_approval_grants(
    env: dict[str, str],
    slack: FakeSlack,
    webhook: WebhookReceiver,
    socket_server: SocketModeServer,
    start_bot: Callable[..., BotProcess],
) -> None:
    write_step_up_policy(Path(env["POLICY_FILE"]), webhook.url)
    port = free_port()
    with FakeOidcProvider() as idp:
        env.update(PORT=str(port), **step_up_env(idp.issuer, f"http://127.0.0.1:{port}"))
        bot = start_bot(env, "serve", "--socket")
        with bot.explained():
            link = bot.wait_link(socket_server)
            link.hello()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert json.load(r) == {"ok": True}

            envelope_id = link.envelope(
                "slash_commands",
                _command("orders-api write 15m PAY-2 fix", BOB, slack.response_url()),
                accepts_response_payload=True,
            )
            request_id = _ack_text(link.ack_for(envelope_id)).split("`")[1]
            card_ts = eventually(
                lambda: _one(env, "SELECT card_ts FROM access_requests WHERE id=?", request_id),
                timeout=WORK_TIMEOUT,
                what="card ts stored",
            )
            envelope_id = link.envelope(
                "interactive",
                _click("approve_request", request_id, LEAD1, str(card_ts), slack.response_url()),
                accepts_response_payload=False,
            )
            link.ack_for(envelope_id)
            said = slack.wait_for(
                "chat.postEphemeral",
                lambda a: a.get("user") == LEAD1 and "step_up_open" in str(a.get("blocks")),
                timeout=WORK_TIMEOUT,
            )[-1]
            url = link_in(said["blocks"])
            assert url.startswith(f"http://127.0.0.1:{port}/step-up/")

            page = requests.Session().get(url, timeout=30)
            assert page.status_code == 200, page.text
            assert "Approval counted (1 of 2): bob@example.com, write on orders-api" in page.text
            assert _one(env, "SELECT count(*) FROM approvals WHERE request_id=?", request_id) == 1
            events = _one(
                env,
                "SELECT count(*) FROM audit_events WHERE event='approval_recorded' "
                "AND request_id=? AND detail_json LIKE '%step_up%'",
                request_id,
            )
            assert events == 1
            # only the browser's routes: no Slack endpoint on this port
            missing = requests.post(f"http://127.0.0.1:{port}/slack/events", timeout=5)
            assert missing.status_code == 404
