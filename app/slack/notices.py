"""Tell people in Slack what happened: the card in the approver channel (updated in place), its
thread (one thread tells the story of one access), and DMs to the requester.

Every method runs after the state change is committed, re-reads the rows, and never raises:
a Slack outage loses a message, never a grant or a revoke (the error is logged).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.models import AccessRequest, AccessSession, RequestState
from app.operations.request_access import attach_card
from app.policy import Policy
from app.review import Review, render_markdown
from app.slack import views
from app.slack.text import escape, slack_date

log = structlog.get_logger(__name__)
F = TypeVar("F", bound=Callable[..., None])


def _never_raises(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
            log.warning("slack_notice_failed", notice=fn.__name__, error=error)
            metrics.SLACK_API_ERRORS.labels(notice=fn.__name__).inc()

    return wrapper  # type: ignore[return-value]


class SlackNotifier:
    def __init__(self, client: WebClient, policy: Policy, db: sessionmaker[Session]) -> None:
        self.client = client
        self.policy = policy
        self.db = db
        self._ctx: Any = None  # set by bind(): attach_card needs the app context

    def bind(self, ctx: Any) -> None:
        self._ctx = ctx

    # --- helpers ---
    def _load(self, request_id: str) -> tuple[AccessRequest | None, AccessSession | None]:
        with self.db() as db:
            request = db.get(AccessRequest, request_id)
            session = db.scalars(
                select(AccessSession).where(AccessSession.request_id == request_id)
            ).first()
            return request, session

    def _refresh_card(self, request_id: str) -> AccessRequest | None:
        request, session = self._load(request_id)
        if request is None or not (request.card_channel and request.card_ts):
            return request
        self.client.chat_update(
            channel=request.card_channel,
            ts=request.card_ts,
            text=views.card_text(request),
            blocks=views.approval_card(self.policy, request, session),
        )
        return request

    def _thread(self, request: AccessRequest | None, text: str) -> None:
        if request is None or not (request.card_channel and request.card_ts):
            return
        self.client.chat_postMessage(
            channel=request.card_channel, thread_ts=request.card_ts, text=text
        )

    def _dm(self, user_id: str, text: str, blocks: list[dict] | None = None) -> None:
        self.client.chat_postMessage(channel=user_id, text=text, blocks=blocks)

    # --- Notifier ---
    @_never_raises
    def request_created(self, request: AccessRequest) -> None:
        channel = request.card_channel or ""
        try:
            posted = self.client.chat_postMessage(
                channel=channel,
                text=views.card_text(request),
                blocks=views.approval_card(self.policy, request, None),
            )
        except SlackApiError as exc:
            self._dm(
                request.requester_id,
                f":warning: Your request `{request.id}` could not be posted to <#{channel}> "
                f"({exc.response.get('error')}). Nobody has seen it yet; ask an admin to invite "
                "the bot to that channel.",
            )
            raise
        attach_card(self._ctx, request.id, posted["channel"], posted["ts"])
        self._dm(
            request.requester_id,
            f"Your request `{request.id}` for {views.what(request, self.policy)} "
            f"(ticket {escape(request.ticket)}) is waiting for approval in <#{channel}>.",
        )

    @_never_raises
    def request_decided(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        if request.state == RequestState.denied:
            self._dm(
                request.requester_id,
                f":x: <@{request.decided_by}> denied your request `{request.id}` for "
                f"{views.what(request, self.policy)}.",
            )
        else:
            self._dm(
                request.requester_id,
                f":white_check_mark: <@{request.decided_by}> approved your request "
                f"`{request.id}`. Granting {views.what(request, self.policy)}…",
            )

    @_never_raises
    def session_granted(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        assert session.expires_at is not None
        self._thread(
            request,
            f":unlock: Granted to `{escape(session.identity or '')}`; "
            f"ends {slack_date(session.expires_at)}.",
        )
        self._dm(
            session.requester_id,
            f"You have {session.role_id} access to {session.system_id} until "
            f"{slack_date(session.expires_at)}.",
            views.granted_message(self.policy, session),
        )

    @_never_raises
    def grant_failed(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        error = escape(session.last_error or "unknown error")
        self._thread(request, f":warning: Grant failed: {error}. Nothing was granted.")
        self._dm(
            session.requester_id,
            f":warning: Granting {views.what(session, self.policy)} failed: {error}. "
            "Nothing was granted; an approver can retry from the card.",
        )

    @_never_raises
    def session_ended(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, f":lock: Access ended ({views.end_reason_text(session)}).")
        self._dm(
            session.requester_id,
            f"Your access {session.id} has ended. Please write a closeout note.",
            views.closeout_prompt(self.policy, session),
        )

    @_never_raises
    def revoke_failed(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        retry = slack_date(session.next_attempt_at) if session.next_attempt_at else "soon"
        self._thread(
            request,
            f":rotating_light: Revoke failed (attempt {session.attempts}): "
            f"{escape(session.last_error or 'unknown error')}. Access is still in place; "
            f"retrying {retry}.",
        )

    @_never_raises
    def closeout_reminder(self, session: AccessSession) -> None:
        self._dm(
            session.requester_id,
            f"Reminder: the closeout note for {session.id} is missing.",
            views.closeout_prompt(self.policy, session, reminder=session.reminders_sent),
        )

    @_never_raises
    def closeout_recorded(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, views.closeout_thread_text(session))
        self._dm(
            session.requester_id, f":memo: Thanks, your closeout note for `{session.id}` is saved."
        )

    @_never_raises
    def drift_found(self, session: AccessSession, detail: str) -> None:
        """Reconciliation found access that does not match the session: said in the card's
        thread and, broadcast from there, in the approver channel (or plainly in the channel
        when the card was never posted)."""
        text = (
            f":rotating_light: *Access drift* — {views.what(session, self.policy)} of "
            f"<@{session.requester_id}> (`{session.id}`): {escape(detail)}"
        )
        request, _ = self._load(session.request_id)
        if request is not None and request.card_channel and request.card_ts:
            self.client.chat_postMessage(
                channel=request.card_channel,
                thread_ts=request.card_ts,
                reply_broadcast=True,
                text=text,
            )
            return
        system = self.policy.system(session.system_id)
        if system is not None:
            self.client.chat_postMessage(channel=self.policy.approver_channel(system), text=text)


def publish_review(client: WebClient, channel: str, review: Review) -> None:
    """The review as a short summary in the channel with the Markdown report attached."""
    client.files_upload_v2(
        channel=channel,
        filename=f"access-review-{review.since:%Y-%m-%d}-to-{review.until:%Y-%m-%d}.md",
        title=f"Access review {review.since:%Y-%m-%d} to {review.until:%Y-%m-%d}",
        content=render_markdown(review),
        initial_comment=":clipboard: " + escape(review.summary()),
    )


class SlackDirectory:
    """Emails from users.info (scope users:read.email), cached for a few minutes."""

    def __init__(self, client: WebClient, ttl_seconds: float = 600) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def email_for(self, user_id: str) -> str | None:
        with self._lock:
            hit = self._cache.get(user_id)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        try:
            user = self.client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            raise ValueError(
                f"cannot look up <@{user_id}> in Slack ({exc.response.get('error')})"
            ) from None
        email = (user.get("profile") or {}).get("email")
        with self._lock:
            self._cache[user_id] = (time.monotonic(), email)
        return email
