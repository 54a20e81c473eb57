"""The two HTTP sinks: Splunk's HTTP Event Collector and a generic HTTPS endpoint (signed JSON).

Splunk HEC (`…/services/collector/event`, or `/services/collector`): one POST per batch, the
events as HEC event objects one after the other (HEC's batch format: concatenated JSON objects,
here one per line), each `{"time": <epoch seconds>, "source": "prod-access", "sourcetype":
"prod-access:audit", "event": <the exported event>, "fields": {"seq": "<seq>", "hash": "<hash>"}}`
(indexed fields are strings), with `Authorization: Splunk <AUDIT_SINK_TOKEN>`. `…/raw` gets
the exported events as JSON lines instead. Every request carries a channel
(`X-Splunk-Request-Channel`, fixed per sink), so a token with indexer acknowledgement enabled
accepts it too; acknowledgements are not polled: HEC's 200 with `"code": 0` is success.

Generic HTTPS: one POST per batch, `{"first_seq", "last_seq", "events": [...]}`, signed as the
webhook provider signs (X-Prod-Access-Timestamp, X-Prod-Access-Signature: sha256=<HMAC-SHA256
of "<timestamp>.<body>"> with AUDIT_SINK_SECRET) and `Idempotency-Key: <first>-<last>-<hash of
the last event>`. Any 2xx is success.

Failures (a timeout, no connection, any other status) raise SinkError; nothing is skipped, the
same batch is sent again later (deliver.py).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.audit_sinks.sinks import Batch, SinkError, json_line
from app.audit_sinks.targets import HEC_PATH, SinkTarget
from app.models import AuditEvent
from app.providers import rest
from app.providers.base import ProviderError
from app.providers.webhook import sign
from app.text import short

TIMEOUT_SECONDS = 10.0
SOURCE, SOURCETYPE = "prod-access", "prod-access:audit"


def _post(service: str, url: str, body: bytes, headers: dict[str, str]) -> rest.Answer:
    try:
        answer = rest.send(
            service,
            "POST",
            url,
            data=body,
            timeout=TIMEOUT_SECONDS,
            headers={"Content-Type": "application/json", **headers},
        )
    except ProviderError as exc:
        raise SinkError(str(exc)) from None
    if not 200 <= answer.status < 300:
        raise SinkError(f"{service} answered HTTP {answer.status}: {short(answer.text())}")
    return answer


def _probe(service: str, url: str) -> str:
    """A plain GET: any answer below HTTP 500 proves the endpoint is there."""
    try:
        answer = rest.send(service, "GET", url, headers={}, timeout=TIMEOUT_SECONDS)
    except ProviderError as exc:
        raise SinkError(str(exc)) from None
    return f"reachable (GET answered HTTP {answer.status})"


class HecSink:
    def __init__(self, target: SinkTarget, token: str) -> None:
        self.target = target
        self._token = token
        self._raw = urllib.parse.urlsplit(target.url).path.rstrip("/").endswith("/raw")
        self._channel = str(uuid.UUID(target.id[:32]))

    def cut(self, waiting: Sequence[AuditEvent], now: datetime) -> Sequence[AuditEvent]:
        return waiting

    def body(self, batch: Batch) -> bytes:
        if self._raw:
            return "\n".join(json_line(event) for event in batch.events).encode()
        return "\n".join(json_line(_hec_event(event)) for event in batch.events).encode()

    def send(self, batch: Batch) -> None:
        answer = _post(
            "Splunk HEC",
            self.target.url,
            self.body(batch),
            {
                "Authorization": f"Splunk {self._token}",
                "X-Splunk-Request-Channel": self._channel,
            },
        )
        code = answer.body.get("code") if isinstance(answer.body, dict) else None
        if code not in (None, 0):
            raise SinkError(f"Splunk HEC answered code {code}: {short(answer.text())}")

    def probe(self) -> str:
        parts = urllib.parse.urlsplit(self.target.url)
        health = urllib.parse.urlunsplit((parts.scheme, parts.netloc, HEC_PATH + "/health", "", ""))
        return _probe("Splunk HEC", health)


def _hec_event(event: dict[str, Any]) -> dict[str, Any]:
    at = datetime.fromisoformat(event["at"])
    return {
        "time": round(at.timestamp(), 6),
        "source": SOURCE,
        "sourcetype": SOURCETYPE,
        "event": event,
        "fields": {"seq": str(event["seq"]), "hash": event["hash"]},
    }


class SignedJsonSink:
    def __init__(self, target: SinkTarget, secret: str) -> None:
        self.target = target
        self._secret = secret

    def cut(self, waiting: Sequence[AuditEvent], now: datetime) -> Sequence[AuditEvent]:
        return waiting

    def send(self, batch: Batch) -> None:
        document = {"first_seq": batch.first, "last_seq": batch.last, "events": batch.events}
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        _post(
            "audit sink",
            self.target.url,
            body,
            {
                "X-Prod-Access-Timestamp": timestamp,
                "X-Prod-Access-Signature": sign(self._secret, timestamp, body),
                "Idempotency-Key": batch.key,
            },
        )

    def probe(self) -> str:
        return _probe("audit sink", self.target.url)
