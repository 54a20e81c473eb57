"""incident.io tracker: an incident by its reference (`INC-42`: the number is what the API
takes) or its id.

Calls: `GET /v2/incidents/{id}` with `Authorization: Bearer <API key>` (a key with "View data"
is enough); the key comes from the variable `token_env` names. incident.io's public API has no
call that adds a comment to an incident, so this tracker takes none (`comment: true` on its
rule stops start-up).

Status categories: triage, live and paused are open; learning and closed are resolved;
declined, merged and canceled are closed. The assignee is the incident lead.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers.base import env_secret
from app.trackers.base import (
    Person,
    Ticket,
    TicketNotFound,
    TicketState,
    TrackerError,
    refuse,
    send,
)

SERVICE = "incident.io"
_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")  # a ULID, incident.io's ids
_NUMBER = re.compile(r"(\d+)\s*$")
_STATES: dict[str, TicketState] = {
    "triage": "open",
    "live": "open",
    "paused": "open",
    "learning": "resolved",
    "closed": "resolved",
    "declined": "closed",
    "merged": "closed",
    "canceled": "closed",
}


class IncidentIoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_env: str = Field(min_length=1)
    api_url: HttpUrl = HttpUrl("https://api.incident.io")
    timeout: float = Field(default=10.0, gt=0, le=120)


class IncidentIoTracker:
    Config = IncidentIoConfig
    SERVICE = SERVICE
    incidents = True
    takes_comments = False

    def __init__(self, config: IncidentIoConfig) -> None:
        self.config = config
        self._token = env_secret(config.token_env)
        self._base = str(config.api_url).rstrip("/")

    def lookup(self, ticket: str) -> Ticket:
        text = ticket.strip()
        number = _NUMBER.search(text)
        reference = text if _ID.match(text) else (number[1] if number else None)
        if reference is None:
            raise TicketNotFound(f"{text} names no incident.io incident (e.g. INC-42).")
        answer = send(
            SERVICE,
            "GET",
            f"{self._base}/v2/incidents/{quote(reference)}",
            headers={"Accept": "application/json", "Authorization": f"Bearer {self._token}"},
            timeout=self.config.timeout,
        )
        if answer.status == 404:
            raise TicketNotFound(f"{text} was not found in incident.io.")
        incident = answer.body.get("incident") if isinstance(answer.body, dict) else None
        if answer.status != 200 or not isinstance(incident, dict):
            raise refuse(SERVICE, answer)
        status = incident.get("incident_status") or {}
        category = str(status.get("category") or "")
        return Ticket(
            key=str(incident.get("reference") or text),
            title=str(incident.get("name") or ""),
            status=str(status.get("name") or category or "unknown"),
            state=_STATES.get(category, "open"),
            url=incident.get("permalink"),
            assignees=tuple(_leads(incident)),
            is_incident=True,
            id=str(incident.get("id") or "") or None,
        )

    def comment(self, ticket: str, text: str) -> None:
        raise TrackerError("incident.io's API takes no comments", retryable=False)


def _leads(incident: dict[str, Any]) -> list[Person]:
    people = []
    for assignment in incident.get("incident_role_assignments") or []:
        role = assignment.get("role") or {}
        user = assignment.get("assignee")
        if role.get("role_type") == "lead" and isinstance(user, dict):
            people.append(Person(str(user.get("name") or ""), user.get("email")))
    return people
