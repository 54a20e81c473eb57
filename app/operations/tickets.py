"""The ticket behind a request, looked up in its tracker before anyone is asked to approve.

`check_ticket` runs inside the request's validation (app/operations/request_access.py), before
the ack, and answers one of three ways:

- the ticket is not found, is closed or resolved (`require_open`), or is not assigned to the
  requester (`require_assignee_is_requester`, emails compared in any case): InvalidRequest on
  the `ticket` field, in the requester's words; nothing is stored, nothing is posted;
- the tracker cannot be asked (timeout, 5xx, refused token, no answer within
  TRACKER_LOOKUP_SECONDS): the request goes on *not verified*, with the reason, which the card
  shows ("⚠ ticket not verified: …") and the `requested` audit event records; approvers decide;
- otherwise the ticket is verified, and the card shows its title, status, assignees and link.

A ticket no tracker rule matches is not looked up (TicketCheck with no tracker), as before
trackers existed. The lookup runs on a small pool so its wait is bounded: a lookup that hangs
keeps a pool thread until the adapter's own timeout, and the request goes on without it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as LookupTimeout
from dataclasses import dataclass
from typing import Any

import structlog

from app.context import AppContext
from app.operations.errors import InvalidRequest
from app.policy import System
from app.text import short
from app.trackers.base import Ticket, TicketNotFound, TrackerError, TrackerUse

log = structlog.get_logger(__name__)
_lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ticket-lookup")


@dataclass(frozen=True)
class TicketCheck:
    """What is stored on the request (the `ticket_*` columns) and shown on its card."""

    ticket_tracker: str | None = None
    ticket_verified: bool | None = None
    ticket_note: str | None = None  # why it is not verified
    ticket_title: str | None = None
    ticket_status: str | None = None
    ticket_assignee: str | None = None
    ticket_url: str | None = None

    def columns(self) -> dict[str, Any]:
        return dict(vars(self))  # the fields, flat (asdict's deep copy cost a request 0.03 ms)

    def audit(self) -> dict[str, Any]:
        """The detail the `requested` audit event gets (nothing without a tracker)."""
        if self.ticket_tracker is None:
            return {}
        detail: dict[str, Any] = {
            "ticket_tracker": self.ticket_tracker,
            "ticket_verified": self.ticket_verified,
        }
        if self.ticket_verified:
            detail["ticket_status"] = self.ticket_status
        else:
            detail["ticket_not_verified"] = self.ticket_note
        return detail


def check_ticket(
    ctx: AppContext, system: System, requester_id: str, email: str | None, ticket: str
) -> TicketCheck:
    """Look the ticket up (see the module docstring); `email`: the requester's, if known."""
    use = ctx.trackers.for_ticket(system, ticket) if ctx.trackers is not None else None
    if use is None:
        return TicketCheck()
    budget = ctx.settings.tracker_lookup_seconds
    try:
        found = _lookups.submit(use.tracker.lookup, ticket).result(timeout=budget)
    except TicketNotFound as exc:
        raise InvalidRequest({"ticket": str(exc)}) from None
    except LookupTimeout:
        return _unverified(use, f"{use.name} did not answer within {budget:g}s")
    except TrackerError as exc:
        return _unverified(use, str(exc))
    except Exception as exc:  # an adapter's bug must not stop requests: approvers decide
        log.exception("ticket_lookup_crashed", tracker=use.rule.type)
        return _unverified(use, f"{use.name} lookup failed: {type(exc).__name__}")
    problem = _refusal(ctx, use, found, requester_id, email)
    if problem:
        raise InvalidRequest({"ticket": problem})
    return TicketCheck(
        ticket_tracker=use.rule.type,
        ticket_verified=True,
        ticket_title=short(found.title, 300),
        ticket_status=short(found.status, 100),
        ticket_assignee=short(found.assignee_names(), 300) or None,
        ticket_url=_link(found.url),
    )


def _refusal(
    ctx: AppContext, use: TrackerUse, found: Ticket, requester_id: str, email: str | None
) -> str | None:
    """Why this ticket cannot back the request, in the requester's words; None when it can."""
    if use.rule.require_open and found.state != "open":
        return (
            f"{found.key} is {found.state} in {use.name} (status: {found.status}); access needs "
            "an open ticket or incident."
        )
    if use.rule.require_assignee_is_requester:
        email = email or ctx.directory.email_for(requester_id)
        if not email:
            return (
                f"{found.key} must be assigned to you, and no email is known for you to "
                "compare with its assignee."
            )
        if not found.assigned_to(email):
            assigned = found.assignee_names() or "nobody"
            return (
                f"{found.key} is assigned to {assigned}, not to you ({email}); only its "
                "assignee may ask for access with it."
            )
    return None


def _unverified(use: TrackerUse, reason: str) -> TicketCheck:
    log.warning("ticket_not_verified", tracker=use.rule.type, reason=reason)
    return TicketCheck(
        ticket_tracker=use.rule.type, ticket_verified=False, ticket_note=short(reason)
    )


def _link(url: str | None) -> str | None:
    """A link the card may show: http(s), no characters that end a Slack link early."""
    if not url or not url.startswith(("https://", "http://")) or any(c in url for c in "<>| "):
        return None
    return url[:500]
