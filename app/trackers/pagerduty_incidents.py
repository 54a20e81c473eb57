"""PagerDuty incidents tracker: an incident by its number (`PD-1234`, `#1234`) or its id
(`Q1W2E3R4T5Y6U7`): the last run of letters and digits in the ticket.

Calls (REST API v2, `Authorization: Token token=<token>`, `Accept:
application/vnd.pagerduty+json;version=2`): `GET /incidents/{number or id}?include[]=assignees`
(PagerDuty's show endpoint takes either; `include[]=assignees` makes each assignment carry the
user's email) and `POST /incidents/{id}/notes` with `{"note": {"content": text}}` and the
`From` header PagerDuty requires of an account-level token: a PagerDuty user's email
(`from_email`). The token comes from the variable `token_env` names (read-write, to add notes).

Statuses: triggered and acknowledged are open, resolved is resolved.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from app.providers.base import env_secret
from app.trackers.base import Person, Ticket, TicketNotFound, TrackerError, refuse, send

SERVICE = "PagerDuty"
ACCEPT = "application/vnd.pagerduty+json;version=2"
_REFERENCE = re.compile(r"([A-Za-z0-9]+)\s*$")


class PagerDutyIncidentsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_env: str = Field(min_length=1)
    from_email: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")  # notes' author
    api_url: HttpUrl = HttpUrl("https://api.pagerduty.com")
    timeout: float = Field(default=10.0, gt=0, le=120)


class PagerDutyIncidentsTracker:
    Config = PagerDutyIncidentsConfig
    SERVICE = SERVICE
    incidents = True

    def __init__(self, config: PagerDutyIncidentsConfig) -> None:
        self.config = config
        self._token = env_secret(config.token_env)
        self._base = str(config.api_url).rstrip("/")

    def _call(self, method: str, path: str, body: object = None) -> Any:
        return send(
            SERVICE,
            method,
            self._base + path,
            headers={
                "Accept": ACCEPT,
                "Authorization": f"Token token={self._token}",
                **({"From": self.config.from_email} if body is not None else {}),
            },
            json_body=body,
            timeout=self.config.timeout,
        )

    def lookup(self, ticket: str) -> Ticket:
        match = _REFERENCE.search(ticket)
        if match is None:
            raise TicketNotFound(f"{ticket} names no PagerDuty incident number or id.")
        reference = match[1]
        answer = self._call("GET", f"/incidents/{quote(reference)}?include[]=assignees")
        if answer.status == 404:
            raise TicketNotFound(f"{ticket.strip()} was not found in PagerDuty.")
        incident = answer.body.get("incident") if isinstance(answer.body, dict) else None
        if answer.status != 200 or not isinstance(incident, dict):
            raise refuse(SERVICE, answer)
        status = str(incident.get("status") or "unknown")
        return Ticket(
            key=ticket.strip(),
            title=str(incident.get("title") or incident.get("summary") or ""),
            status=status,
            state="resolved" if status == "resolved" else "open",
            url=incident.get("html_url"),
            assignees=tuple(_assignees(incident)),
            is_incident=True,
            id=str(incident.get("id") or "") or None,
        )

    def comment(self, ticket: str, text: str) -> None:
        try:
            incident_id = self.lookup(ticket).id
        except TicketNotFound as exc:
            raise TrackerError(str(exc), retryable=False) from None
        answer = self._call(
            "POST", f"/incidents/{quote(incident_id or '')}/notes", {"note": {"content": text}}
        )
        if answer.status not in (200, 201):
            raise refuse(SERVICE, answer)


def _assignees(incident: dict[str, Any]) -> list[Person]:
    people = []
    for assignment in incident.get("assignments") or []:
        user = assignment.get("assignee") if isinstance(assignment, dict) else None
        if isinstance(user, dict):
            people.append(
                Person(str(user.get("name") or user.get("summary") or ""), user.get("email"))
            )
    return people
