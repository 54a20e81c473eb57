"""How a notice reaches Slack: each NoticeKind named with the SlackNotifier method that says it
(a table, so a kept notice's stored kind never depends on a method's name), and Slack's errors
told briefly for the log and the kept row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from app.delivery.notices import NoticeArg, NoticeKind
from app.delivery.outbox import Deliver
from app.slack.notifier import SlackNotifier
from app.text import short


def deliver_to(notifier: SlackNotifier) -> Deliver:
    """Deliver notices by calling `notifier` (raises what Slack raised)."""
    says: dict[NoticeKind, Callable[..., None]] = {
        NoticeKind.request_created: notifier.request_created,
        NoticeKind.approval_counted: notifier.approval_counted,
        NoticeKind.request_decided: notifier.request_decided,
        NoticeKind.breakglass_escalated: notifier.breakglass_escalated,
        NoticeKind.breakglass_reviewed: notifier.breakglass_reviewed,
        NoticeKind.session_granted: notifier.session_granted,
        NoticeKind.grant_failed: notifier.grant_failed,
        NoticeKind.session_ended: notifier.session_ended,
        NoticeKind.revoke_failed: notifier.revoke_failed,
        NoticeKind.closeout_reminder: notifier.closeout_reminder,
        NoticeKind.closeout_recorded: notifier.closeout_recorded,
        NoticeKind.closeout_missing: notifier.closeout_missing,
        NoticeKind.drift_found: notifier.drift_found,
        NoticeKind.home_opened: notifier.home_opened,
        NoticeKind.ticket_comment_failed: notifier.ticket_comment_failed,
        NoticeKind.approvers_reminded: notifier.approvers_reminded,
        NoticeKind.request_escalated: notifier.request_escalated,
        NoticeKind.delegation_changed: notifier.delegation_changed,
        NoticeKind.policy_reload_refused: notifier.policy_reload_refused,
    }

    def deliver(kind: NoticeKind, args: tuple[NoticeArg, ...]) -> None:
        says[kind](*args)

    return deliver


def describe(exc: Exception) -> str:
    """Slack's error code (and the HTTP status when it was not 200), else the exception."""
    if isinstance(exc, SlackApiError):
        response: Any = exc.response
        status = getattr(response, "status_code", 200)
        error = str(response.get("error") or "unknown_error")
        return error if status == 200 else f"{error} (HTTP {status})"
    return short(repr(exc))
