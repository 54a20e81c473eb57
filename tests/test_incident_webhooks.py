"""POST /webhooks/pagerduty and /webhooks/incident-io on the bot's real HTTP server: the
services' documented signature vectors (tests/fixtures/webhooks/, each file says where it comes
from) are accepted and any change to them refused; a signed resolve ends the incident's
sessions at once with the closeout prompt; a bad, missing or stale signature is 401 and changes
nothing; a delivery sent again is handled once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from wsgiref.simple_server import make_server

import pytest
from pydantic import SecretStr

from app import clock, incident_webhooks
from app.models import EndReason, SessionState
from app.web import make_browser_app
from app.webhook_signatures import (
    pagerduty_signature_ok,
    standard_webhook_key,
    standard_webhook_ok,
)
from tests.conftest import BOB, eventually
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.incident_bot import (
    INCIDENT_IO_WEBHOOK_SECRET,
    PD_WEBHOOK_SECRET,
    IncidentBot,
    ended_dm,
    incident_bot,
)

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
PD_VECTOR = json.loads((FIXTURES / "pagerduty_v3_signature.json").read_text())
SVIX_VECTOR = json.loads((FIXTURES / "standard_webhooks_signature.json").read_text())


@pytest.fixture
def ib(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IncidentBot]:
    yield from incident_bot(tmp_path, slack, webhook, monkeypatch)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _pd_signed(body: bytes, secret: str = PD_WEBHOOK_SECRET) -> dict[str, str]:
    """Signed as PagerDuty's docs say: v1=hex(HMAC-SHA256(secret, raw body))."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-PagerDuty-Signature": f"v1={digest}"}


def _pd_resolved(incident_id: str, number: int, event_id: str = "01EVTRESOLVED0001") -> bytes:
    event = {
        "event": {
            "id": event_id,
            "event_type": "incident.resolved",
            "resource_type": "incident",
            "occurred_at": "2026-12-03T10:00:00.000Z",
            "data": {"id": incident_id, "type": "incident", "number": number,
                     "status": "resolved", "title": "Checkout 500s"},
        }
    }  # fmt: skip
    return json.dumps(event).encode()


def _svix_signed(body: bytes, webhook_id: str, at: int | None = None) -> dict[str, str]:
    """Signed as Standard Webhooks say: v1,base64(HMAC-SHA256(key, "id.timestamp.body"))."""
    timestamp = str(at if at is not None else int(clock.now().timestamp()))
    key = base64.b64decode(INCIDENT_IO_WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }


def _inc_closed(incident_id: str, reference: str) -> bytes:
    kind = "public_incident.incident_updated_v2"
    incident = {"id": incident_id, "reference": reference, "name": "Payments degraded",
                "incident_status": {"name": "Closed", "category": "closed"}}  # fmt: skip
    return json.dumps({"event_type": kind, kind: {"incident": incident}}).encode()


def test_the_documented_vectors_verify_and_any_change_does_not() -> None:
    body, secret = PD_VECTOR["body"].encode(), PD_VECTOR["secret"]
    assert pagerduty_signature_ok(secret, body, PD_VECTOR["valid_signature"])
    assert not pagerduty_signature_ok(secret, body, PD_VECTOR["mismatched_signature"])
    changed = body.replace(b"P1", b"P2")
    assert not pagerduty_signature_ok(secret, changed, PD_VECTOR["valid_signature"])
    rotating = f"{PD_VECTOR['mismatched_signature']},{PD_VECTOR['valid_signature']}"
    assert pagerduty_signature_ok(secret, body, rotating)  # two secrets during a rotation
    assert not pagerduty_signature_ok(secret, body, None)

    key = standard_webhook_key(SVIX_VECTOR["secret"])
    sent = int(SVIX_VECTOR["webhook_timestamp"])
    args = (SVIX_VECTOR["webhook_id"], SVIX_VECTOR["webhook_timestamp"])
    body, signature = SVIX_VECTOR["body"].encode(), SVIX_VECTOR["webhook_signature"]
    assert standard_webhook_ok(key, *args, body, signature, now=sent + 10)
    assert not standard_webhook_ok(key, *args, body, signature, now=sent + 301)  # stale
    assert not standard_webhook_ok(key, *args, body, signature, now=sent - 301)  # from the future
    assert not standard_webhook_ok(key, *args, body + b" ", signature, now=sent)
    assert not standard_webhook_ok(key, "msg_other", args[1], body, signature, now=sent)
    assert standard_webhook_ok(key, *args, body, f"v1,bm90IHRoaXM= {signature}", now=sent)
    with pytest.raises(ValueError, match="whsec_"):
        standard_webhook_key("whsec_not base64!")


def test_pagerdutys_documented_delivery_is_accepted_at_the_endpoint_and_a_changed_one_refused(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = {"pagerduty_webhook_secret": SecretStr(PD_VECTOR["secret"])}
    for ib in incident_bot(tmp_path, slack, webhook, monkeypatch, extra_settings=secret):
        url, body = ib.webhook_url("pagerduty"), PD_VECTOR["body"].encode()
        signed = {"X-PagerDuty-Signature": PD_VECTOR["valid_signature"]}
        assert _post(url, body.replace(b"P1", b"P2"), signed)[0] == 401
        assert _post(url, body, {})[0] == 401
        assert _post(url, body, signed) == (200, "OK: ok\n")  # a priority change: nothing to end
        assert _post(url, body, signed) == (200, "OK: already handled\n")


def test_incident_ios_documented_delivery_is_accepted_only_within_five_minutes(
    ib: IncidentBot,
) -> None:
    headers = {
        "webhook-id": SVIX_VECTOR["webhook_id"],
        "webhook-timestamp": SVIX_VECTOR["webhook_timestamp"],
        "webhook-signature": SVIX_VECTOR["webhook_signature"],
    }
    url, body = ib.webhook_url("incident-io"), SVIX_VECTOR["body"].encode()
    assert _post(url, body, headers)[0] == 401  # sent in 2021: long stale
    sent = datetime.fromtimestamp(int(SVIX_VECTOR["webhook_timestamp"]), UTC)
    clock.travel(sent - clock.now())
    assert _post(url, body + b"\n", headers)[0] == 401
    assert _post(url, body, headers) == (200, "OK: ok\n")


def test_a_signed_pagerduty_resolve_ends_the_incidents_session_at_once_and_once(
    ib: IncidentBot, webhook: WebhookReceiver
) -> None:
    ib.pagerduty.add_incident("Q1PD", 1234, "Checkout 500s")
    session = ib.bot.granted("orders-api write 2h PD-1234 mitigate the incident")
    ib.pagerduty.incidents["Q1PD"]["status"] = "resolved"
    body = _pd_resolved("Q1PD", 1234)

    assert _post(ib.webhook_url("pagerduty"), body, _pd_signed(body)) == (200, "OK: ok\n")

    ended = ib.bot.wait_session(session.request_id, SessionState.ended)
    assert ended.end_reason == EndReason.incident_resolved
    assert webhook.wait_for(1, action="revoke")[0].body["ticket"] == "PD-1234"
    assert "has ended (the incident PD-1234 was resolved)" in ended_dm(ib, BOB, session.id)
    assert len(ib.events("incident_resolved_ended")) == 1

    # the grant's and the end's notes on the incident go out through the outbox, each after a
    # lookup of its own: once both are in, nothing else is due to ask PagerDuty
    eventually(lambda: [c.method for c in ib.pagerduty.calls].count("POST") == 2, what="notes")
    lookups = len(ib.pagerduty.calls)
    again = _post(ib.webhook_url("pagerduty"), body, _pd_signed(body))
    assert again == (200, "OK: already handled\n")
    assert len(ib.pagerduty.calls) == lookups  # not even looked up again
    assert len(ib.events("incident_resolved_ended")) == 1


def test_a_signed_incident_io_update_to_closed_ends_the_incidents_session(
    ib: IncidentBot,
) -> None:
    ib.incident_io.add_incident("01HZINC42", 42, "Payments degraded", category="live")
    ib.incident_io.add_incident("01HZINC43", 43, "Other", category="live")
    session = ib.bot.granted("orders-api write 2h INC-42 mitigate the incident")
    other = ib.bot.granted("orders-api read 30m INC-43 unrelated incident")
    assert other.id != session.id
    for incident in ("01HZINC42", "01HZINC43"):
        ib.incident_io.incidents[incident]["category"] = "closed"
    body = _inc_closed("01HZINC42", "INC-42")

    status = _post(ib.webhook_url("incident-io"), body, _svix_signed(body, "msg_closed_42"))

    assert status == (200, "OK: ok\n")
    ib.bot.wait_session(session.request_id, SessionState.ended)
    assert "the incident INC-42 was resolved" in ended_dm(ib, BOB, session.id)
    # only the incident the webhook named was asked about; INC-43 waits for the poll
    assert ib.bot.session_for(other.request_id).state == SessionState.active


def test_bad_missing_and_stale_signatures_get_401_and_change_nothing(ib: IncidentBot) -> None:
    ib.pagerduty.add_incident("Q1PD", 1234, "Checkout 500s")
    ib.incident_io.add_incident("01HZINC42", 42, "Payments degraded")
    on_pd = ib.bot.granted("orders-api write 2h PD-1234 mitigate the incident")
    on_inc = ib.bot.granted("orders-api write 2h INC-42 mitigate the incident")
    ib.pagerduty.incidents["Q1PD"]["status"] = "resolved"
    ib.incident_io.incidents["01HZINC42"]["category"] = "closed"
    asked = _lookups(ib)
    pd_body, inc_body = _pd_resolved("Q1PD", 1234), _inc_closed("01HZINC42", "INC-42")
    six_minutes_ago = int(clock.now().timestamp()) - 360

    refused = [
        _post(ib.webhook_url("pagerduty"), pd_body, _pd_signed(pd_body, "made-up-secret")),
        _post(ib.webhook_url("pagerduty"), pd_body, {"Content-Type": "application/json"}),
        _post(ib.webhook_url("pagerduty"), pd_body + b" ", _pd_signed(pd_body)),
        _post(ib.webhook_url("incident-io"), inc_body, {"Content-Type": "application/json"}),
        _post(ib.webhook_url("incident-io"), inc_body, _svix_signed(b"{}", "msg_1")),
        _post(ib.webhook_url("incident-io"), inc_body,
              _svix_signed(inc_body, "msg_2", at=six_minutes_ago)),
    ]  # fmt: skip

    assert [status for status, _ in refused] == [401] * 6
    assert all(text == "Unauthorized: bad or missing signature\n" for _, text in refused)
    assert _lookups(ib) == asked  # no forged webhook made the bot look an incident up
    for session in (on_pd, on_inc):
        assert ib.bot.session_for(session.request_id).state == SessionState.active
    assert ib.events("incident_resolved_ended") == []
    # the signed ones still go through afterwards: nothing was remembered from the forgeries
    assert _post(ib.webhook_url("incident-io"), inc_body, _svix_signed(inc_body, "msg_2"))[0] == 200
    eventually(lambda: ib.bot.session_for(on_inc.request_id).state == SessionState.ended)


def test_a_webhook_whose_secret_is_not_set_is_not_served(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    unset = {"pagerduty_webhook_secret": None}
    for ib in incident_bot(tmp_path, slack, webhook, monkeypatch, extra_settings=unset):
        body = _pd_resolved("Q1PD", 1)
        assert _post(ib.webhook_url("pagerduty"), body, _pd_signed(body))[0] == 404


def test_socket_modes_http_listener_serves_the_webhooks(ib: IncidentBot) -> None:
    """Socket Mode has no Slack endpoint; with a webhook secret set, its listener on $PORT
    (app.web.make_browser_app, run by `serve --socket`) answers the webhooks."""
    assert incident_webhooks.configured(ib.bot.ctx.settings)
    ib.pagerduty.add_incident("Q9PD", 4321, "Checkout 500s")
    session = ib.bot.granted("orders-api write 2h PD-4321 mitigate the incident")
    ib.pagerduty.incidents["Q9PD"]["status"] = "resolved"
    server = make_server("127.0.0.1", 0, make_browser_app(ib.bot.bot))
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/webhooks/pagerduty"
        body = _pd_resolved("Q9PD", 4321)
        assert _post(url, body, {})[0] == 401
        assert _post(url, body, _pd_signed(body)) == (200, "OK: ok\n")
        ib.bot.wait_session(session.request_id, SessionState.ended)
    finally:
        server.shutdown()
        server.server_close()


def _lookups(ib: IncidentBot) -> int:
    """How often the bot asked the trackers about an incident (GET): the grants' ticket notes
    (POST) go out after the grant, whenever the outbox sends them, and are not lookups."""
    return sum(1 for call in (*ib.pagerduty.calls, *ib.incident_io.calls) if call.method == "GET")
