"""What operations tell people, as typed notices. Operations call `ctx.notify.<kind>(…)` after
their commit; every one of those calls is a `NoticeKind` with its arguments, handed to
`Notifier.send`. The outbox (outbox.py) stores and delivers them; `QuietNotifier` (the command
line without Slack, tests of operations) drops them.

A kind's value is what a kept notice row stores (`pending_notices.notice`): the values never
change, so a notice kept by one version is delivered by the next, whatever its methods are
called by then.
"""

from __future__ import annotations

from enum import StrEnum

from app.models import AccessRequest, AccessSession

#: One argument of a notice: the row it is about (stored as its id, read again when sent), or a
#: plain value (a user id, a text).
NoticeArg = AccessRequest | AccessSession | str


class NoticeKind(StrEnum):
    request_created = "request_created"  # (request)
    approval_counted = "approval_counted"  # (request, approver id)
    request_decided = "request_decided"  # (request)
    breakglass_escalated = "breakglass_escalated"  # (request)
    breakglass_reviewed = "breakglass_reviewed"  # (request)
    session_granted = "session_granted"  # (session)
    grant_failed = "grant_failed"  # (session)
    session_ended = "session_ended"  # (session)
    revoke_failed = "revoke_failed"  # (session)
    closeout_reminder = "closeout_reminder"  # (session)
    closeout_recorded = "closeout_recorded"  # (session)
    closeout_missing = "closeout_missing"  # (session)
    drift_found = "drift_found"  # (session, what was found)
    home_opened = "home_opened"  # (user id)
    # ticket trackers (app/trackers/): a comment on the session's ticket, and (to Slack) that
    # one could not be posted; the event is a TicketEvent value
    ticket_comment = "ticket_comment"  # (session, event)
    ticket_comment_failed = "ticket_comment_failed"  # (session, event, error, outcome)
    # approvers who are busy (app/operations/waiting_request.py, delegation.py)
    approvers_reminded = "approvers_reminded"  # (request)
    request_escalated = "request_escalated"  # (request)
    delegation_changed = "delegation_changed"  # (delegation id)
    # a policy file refused whole (app/policy_reload.py)
    policy_reload_refused = "policy_reload_refused"  # (channel id, file sha256, reason)


#: Kinds delivered to a ticket tracker, not to Slack (app/delivery/tickets.py). They wait in a
#: line of their own, not their request's: a tracker that is down delays its comments, never
#: the request's Slack notices (nor the other way round).
TRACKER_KINDS = frozenset({NoticeKind.ticket_comment})


def own_line(request_id: str) -> str:
    """The line (`pending_notices.request_id`) a request's TRACKER_KINDS notices wait in."""
    return request_id + "/T"


class Notifier:
    """Tells people what happened. Called after the state is committed; never raises into the
    caller. Each method is the typed way to send one kind; `send` is what a notifier does."""

    def send(self, kind: NoticeKind, *args: NoticeArg) -> None:
        raise NotImplementedError

    def request_created(self, request: AccessRequest) -> None:
        self.send(NoticeKind.request_created, request)

    def approval_counted(self, request: AccessRequest, approver_id: str) -> None:
        self.send(NoticeKind.approval_counted, request, approver_id)

    def request_decided(self, request: AccessRequest) -> None:
        self.send(NoticeKind.request_decided, request)

    def breakglass_escalated(self, request: AccessRequest) -> None:
        self.send(NoticeKind.breakglass_escalated, request)

    def breakglass_reviewed(self, request: AccessRequest) -> None:
        self.send(NoticeKind.breakglass_reviewed, request)

    def session_granted(self, session: AccessSession) -> None:
        self.send(NoticeKind.session_granted, session)

    def grant_failed(self, session: AccessSession) -> None:
        self.send(NoticeKind.grant_failed, session)

    def session_ended(self, session: AccessSession) -> None:
        self.send(NoticeKind.session_ended, session)

    def revoke_failed(self, session: AccessSession) -> None:
        self.send(NoticeKind.revoke_failed, session)

    def closeout_reminder(self, session: AccessSession) -> None:
        self.send(NoticeKind.closeout_reminder, session)

    def closeout_recorded(self, session: AccessSession) -> None:
        self.send(NoticeKind.closeout_recorded, session)

    def closeout_missing(self, session: AccessSession) -> None:
        self.send(NoticeKind.closeout_missing, session)

    def drift_found(self, session: AccessSession, detail: str) -> None:
        self.send(NoticeKind.drift_found, session, detail)

    def home_opened(self, user_id: str) -> None:
        self.send(NoticeKind.home_opened, user_id)

    def ticket_comment(self, session: AccessSession, event: str) -> None:
        self.send(NoticeKind.ticket_comment, session, event)

    def ticket_comment_failed(
        self, session: AccessSession, event: str, error: str, outcome: str
    ) -> None:
        """`outcome`: "retrying" or "given_up"."""
        self.send(NoticeKind.ticket_comment_failed, session, event, error, outcome)

    def approvers_reminded(self, request: AccessRequest) -> None:
        self.send(NoticeKind.approvers_reminded, request)

    def request_escalated(self, request: AccessRequest) -> None:
        self.send(NoticeKind.request_escalated, request)

    def delegation_changed(self, delegation_id: str) -> None:
        self.send(NoticeKind.delegation_changed, delegation_id)

    def policy_reload_refused(self, channel: str, sha256: str, reason: str) -> None:
        self.send(NoticeKind.policy_reload_refused, channel, sha256, reason)


class QuietNotifier(Notifier):
    """For the command line without Slack and tests of operations: nobody to tell."""

    def send(self, kind: NoticeKind, *args: NoticeArg) -> None:
        return None
