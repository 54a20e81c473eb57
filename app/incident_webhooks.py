"""`POST /webhooks/pagerduty` and `POST /webhooks/incident-io`: a resolved incident ends the
sessions bound to it at once, instead of at the next poll (TRACKER_POLL_SECONDS).

Rules it relies on:
- a route answers only when its secret is set (PAGERDUTY_WEBHOOK_SECRET,
  INCIDENT_IO_WEBHOOK_SECRET; 404 otherwise); every delivery's signature is checked on the raw
  body first (app/webhook_signatures.py): missing, wrong or (incident.io) stale → 401, and
  nothing is read, stored or done;
- a delivery is handled once: its id (PagerDuty: the signed `event.id`; incident.io: the signed
  `webhook-id`) is recorded in the table of requests seen lately (app/slack/replays.py, rows
  kept 10 minutes, keys of their own kind), on every replica; a repeat is answered 200 and
  does nothing;
- the webhook only names the incident; its tracker's API says whether it is resolved, and the
  sessions end through the same operation as the poll (app/operations/incident_resolved.py).
  So a delivery replayed after 10 minutes (PagerDuty's carry no timestamp) can do no more than
  the next poll would;
- the work runs after the answer (the pool Slack's work uses); a tracker that cannot answer
  now leaves it to the poll.

Events acted on: PagerDuty `incident.resolved`; incident.io `public_incident.incident_updated_v2`,
`…incident_status_updated_v2` and their `private_incident.` forms, unless the payload's status
category says the incident is still open. Any other event is answered 200 and ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from app import clock
from app.config import Settings
from app.context import AppContext
from app.operations.incident_resolved import end_sessions_if_resolved, incident_bound_tickets
from app.slack.replays import remember
from app.text import register_secret
from app.trackers.base import TrackerUse
from app.webhook_signatures import (
    pagerduty_signature_ok,
    standard_webhook_key,
    standard_webhook_ok,
)

if TYPE_CHECKING:
    from app.runtime import Bot

log = structlog.get_logger(__name__)
StartResponse = Callable[..., Any]

#: route → (service, the tracker type whose tickets it names)
ROUTES = {
    "/webhooks/pagerduty": ("pagerduty", "pagerduty_incidents"),
    "/webhooks/incident-io": ("incident_io", "incident_io"),
}
MAX_BODY = 1024 * 1024  # both services send far less
_OPEN_CATEGORIES = {"triage", "live", "paused"}
_INCIDENT_IO_EVENTS = re.compile(
    r"^(public|private)_incident\.incident_(status_)?updated_v2$"
)  # fmt: skip
_LAST_WORD = re.compile(r"([A-Za-z0-9]+)\s*$")


def configured(settings: Settings) -> bool:
    """Does any incident webhook have its secret (so Socket Mode must listen on $PORT)?"""
    return bool(settings.pagerduty_webhook_secret or settings.incident_io_webhook_secret)


def webhook_route(
    bot: Bot, environ: dict[str, Any], start_response: StartResponse
) -> list[bytes] | None:
    """The answer for a webhook path; None for any other path."""
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None:
        return None
    service, tracker_type = route
    settings = bot.ctx.settings
    secret = getattr(settings, f"{service}_webhook_secret")
    if secret is None:
        return _answer(start_response, "404 Not Found", "this webhook is not configured")
    if environ.get("REQUEST_METHOD") != "POST":
        return _answer(start_response, "405 Method Not Allowed", "POST only")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= MAX_BODY:
        return _answer(start_response, "413 Content Too Large", "body too large")
    body = environ["wsgi.input"].read(length) if length else b""
    delivery = _verified(service, secret.get_secret_value(), environ, body)
    if delivery is None:
        log.warning("incident_webhook_refused", service=service)
        return _answer(start_response, "401 Unauthorized", "bad or missing signature")
    try:
        payload = json.loads(body)
    except ValueError:
        return _answer(start_response, "400 Bad Request", "not JSON")
    delivery = delivery or _pagerduty_event_id(payload)
    if delivery and not _first_time(bot.ctx, service, delivery):
        log.info("incident_webhook_repeated", service=service, delivery=delivery)
        return _answer(start_response, "200 OK", "already handled")
    incident = _resolved_incident(service, payload)
    if incident:
        log.info("incident_webhook_resolved", service=service, incident=sorted(incident))
        bot.later(end_sessions_of_incident, bot.ctx, tracker_type, incident)
    return _answer(start_response, "200 OK", "ok")


def end_sessions_of_incident(ctx: AppContext, tracker_type: str, incident: set[str]) -> None:
    """The poll's work, for the tickets that name this incident (its id or number)."""

    def refers_to(use: TrackerUse, ticket: str) -> bool:
        word = _LAST_WORD.search(ticket)
        return use.rule.type == tracker_type and word is not None and word[1] in incident

    end_sessions_if_resolved(ctx, incident_bound_tickets(ctx, refers_to))


def _verified(service: str, secret: str, environ: dict[str, Any], body: bytes) -> str | None:
    """The delivery's id ("" when it has none in the headers) if the signature holds; None if
    not."""
    if service == "pagerduty":
        ok = pagerduty_signature_ok(secret, body, environ.get("HTTP_X_PAGERDUTY_SIGNATURE"))
        return "" if ok else None
    key = standard_webhook_key(secret)
    register_secret(secret.strip().removeprefix("whsec_"))
    webhook_id = environ.get("HTTP_WEBHOOK_ID")
    ok = standard_webhook_ok(
        key,
        webhook_id,
        environ.get("HTTP_WEBHOOK_TIMESTAMP"),
        body,
        environ.get("HTTP_WEBHOOK_SIGNATURE"),
        clock.now().timestamp(),
    )
    return webhook_id if ok and webhook_id else None


def _first_time(ctx: AppContext, service: str, delivery: str) -> bool:
    key = hashlib.sha256(f"webhook:{service}:{delivery}".encode()).hexdigest()
    return bool(ctx.writes.write(lambda db: remember(db.connection(), [key])))


def _pagerduty_event_id(payload: Any) -> str:
    event = payload.get("event") if isinstance(payload, dict) else None
    return str(event.get("id") or "") if isinstance(event, dict) else ""


def _resolved_incident(service: str, payload: Any) -> set[str]:
    """The ids and number of the incident a resolve event is about; empty for other events."""
    if not isinstance(payload, dict):
        return set()
    if service == "pagerduty":
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("event_type") != "incident.resolved":
            return set()
        data = event.get("data")
        names = [data.get("id"), data.get("number")] if isinstance(data, dict) else []
    else:
        event_type = str(payload.get("event_type") or "")
        found = payload.get(event_type)
        if not _INCIDENT_IO_EVENTS.match(event_type) or not isinstance(found, dict):
            return set()
        inner = found.get("incident")
        incident: dict[str, Any] = inner if isinstance(inner, dict) else found
        category = (incident.get("incident_status") or {}).get("category")
        if category in _OPEN_CATEGORIES:
            return set()
        reference = _LAST_WORD.search(str(incident.get("reference") or ""))
        names = [incident.get("id"), reference[1] if reference else None]
    return {str(name) for name in names if name not in (None, "")}


def _answer(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [f"{status.split(' ', 1)[1]}: {text}\n".encode()]
