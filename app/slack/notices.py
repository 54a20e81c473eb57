"""Tell people in Slack what happened: the card in the approver channel (updated in place), its
thread (one thread tells the story of one access), and DMs to the requester. Texts are mrkdwn
(a message's `text` too): everything in them is escaped where it is put in, and only mentions,
channels and dates are raw (the rule: app/slack/text.py).

Every method runs after the state change is committed and re-reads the rows; it is called by
the outbox (app/delivery/outbox.py, through app/slack/delivery.py), never by an operation: an
error it raises keeps the notice to be sent again later, so a Slack outage delays a message and
never blocks or loses a grant or a revoke.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from app import clock
from app.db import reading
from app.models import (
    AccessRequest,
    AccessSession,
    RequestKind,
    RequestState,
    ReviewState,
    Route,
    SessionState,
)
from app.operations import people, queries
from app.operations.request_access import attach_card
from app.policy import Policy
from app.policy_values import format_duration
from app.review import Review, render_markdown
from app.slack import views
from app.slack.text import escape, quote, slack_date

log = structlog.get_logger(__name__)
HOME_FRESH_SECONDS = 3600  # an opened Home tab is republished on changes for this long


class SlackNotifier:
    def __init__(self, client: WebClient, policy: Policy, db: sessionmaker[Session]) -> None:
        self.client = client
        self.policy = policy
        self.db = db
        self._ctx: Any = None  # set by bind(): card ids and approver groups need the context
        self._viewers: dict[str, float] = {}  # who opened the Home tab, when (monotonic)
        self._viewers_lock = threading.Lock()

    def bind(self, ctx: Any) -> None:
        self._ctx = ctx

    # --- helpers ---
    def _load(self, request_id: str) -> tuple[AccessRequest | None, AccessSession | None]:
        """The request and its session (for an extension: the session it extends)."""
        with reading(self.db) as db:
            request = db.get(AccessRequest, request_id, options=[queries.with_approvals])
            if request is not None and request.kind == RequestKind.extension:
                session = db.get(AccessSession, request.extends_session_id)
            else:
                session = db.scalars(
                    select(AccessSession).where(AccessSession.request_id == request_id)
                ).first()
            return request, session

    def _approvers(self, request: AccessRequest) -> str:
        system = self.policy.system(request.system_id)
        if system is None or self._ctx is None:
            return ""
        return people.mentions(self._ctx, self.policy.approvers_of(system, request.role_id))

    def _refresh_card(self, request_id: str) -> AccessRequest | None:
        request, session = self._load(request_id)
        if request is None or not (request.card_channel and request.card_ts):
            return request
        self.client.chat_update(
            channel=request.card_channel,
            ts=request.card_ts,
            text=views.card_text(request),
            blocks=views.approval_card(self.policy, request, session, self._approvers(request)),
        )
        return request

    def _story(self, request: AccessRequest | None) -> AccessRequest | None:
        """The request whose card's thread tells this access's story (an extension's events
        belong to the original access)."""
        if request is None or request.kind != RequestKind.extension:
            return request
        with reading(self.db) as db:
            session = db.get(AccessSession, request.extends_session_id)
            return session.request if session is not None else None

    def _thread(self, request: AccessRequest | None, text: str, broadcast: bool = False) -> None:
        if request is None or not (request.card_channel and request.card_ts):
            return
        self.client.chat_postMessage(
            channel=request.card_channel,
            thread_ts=request.card_ts,
            text=text,
            reply_broadcast=broadcast or None,
        )

    def _dm(self, user_id: str, text: str, blocks: list[dict] | None = None) -> None:
        self.client.chat_postMessage(channel=user_id, text=text, blocks=blocks)

    def _homes_of(self, request: AccessRequest | None) -> None:
        """Republish the Home tab of the requester and of the people who may decide, for those
        who opened it lately (opening it always publishes it fresh, so nobody else needs it:
        a burst of requests must not turn into a burst of views.publish for every approver)."""
        if request is None:
            return
        with self._viewers_lock:
            cutoff = time.monotonic() - HOME_FRESH_SECONDS
            viewers = {user for user, opened in self._viewers.items() if opened > cutoff}
        if not viewers:
            return
        users = [request.requester_id]
        system = self.policy.system(request.system_id)
        if system is not None and self._ctx is not None:
            users += sorted(people.approvers(self._ctx, system, request.role_id))
        self._publish_homes([user for user in users if user in viewers])

    def _publish_homes(self, user_ids: list[str]) -> None:
        if not user_ids:
            return
        now = clock.now()
        with reading(self.db) as db:
            pending = queries.pending_all(db)
            reviews = queries.reviews_due(db)
            homes = {
                user: self._home(db, user, pending, reviews) for user in dict.fromkeys(user_ids)
            }
        for user, home in homes.items():
            self.client.views_publish(user_id=user, view=views.home_view(self.policy, home, now))

    def _home(
        self,
        db: Session,
        user: str,
        pending: list[AccessRequest],
        reviews: list[AccessRequest],
    ) -> views.Home:
        def mine_to_decide(request: AccessRequest) -> bool:
            system = self.policy.system(request.system_id)
            return (
                system is not None
                and request.requester_id != user
                and user not in request.approved_by
                and people.may_approve(self._ctx, system, request.role_id, user)
            )

        return views.Home(
            sessions=queries.open_sessions(db, user),
            requests=[r for r in pending if r.requester_id == user],
            to_decide=[r for r in pending if mine_to_decide(r)],
            to_review=[r for r in reviews if mine_to_decide(r)],
            history=queries.recent_requests(db, user),
            systems=people.requestable(self._ctx, user),
        )

    # --- Notifier ---
    def home_opened(self, user_id: str) -> None:
        """Someone opened the Home tab: publish it, and keep it fresh for a while."""
        with self._viewers_lock:
            self._viewers[user_id] = time.monotonic()
        self._publish_homes([user_id])

    def request_created(self, request: AccessRequest) -> None:
        channel = request.card_channel or ""
        session = None
        # A pending access request read with its approvals (submit_request) is what the card
        # shows; anything else is read again, with the session it has (or extends) by now.
        if (
            request.state != RequestState.pending
            or request.kind != RequestKind.access
            or "approvals" in inspect(request).unloaded
        ):
            loaded, session = self._load(request.id)
            assert loaded is not None
            request = loaded
        try:
            posted = self.client.chat_postMessage(
                channel=channel,
                text=views.card_text(request),
                blocks=views.approval_card(self.policy, request, session, self._approvers(request)),
            )
        except SlackApiError as exc:
            self._dm(
                request.requester_id,
                f":warning: Your request `{request.id}` could not be posted to <#{channel}> "
                f"({escape(str(exc.response.get('error')))}). Nobody has seen it yet; ask an "
                "admin to invite the bot to that channel.",
            )
            raise
        attach_card(self._ctx, request.id, posted["channel"], posted["ts"])
        request.card_channel, request.card_ts = posted["channel"], posted["ts"]
        if views.reason_cut(request):
            self._thread(request, "*Full reason*\n" + quote(request.reason, 2900))
        if request.kind == RequestKind.extension:
            self._thread(
                self._story(request),
                f":stopwatch: <@{request.requester_id}> asked for "
                f"{format_duration(timedelta(seconds=request.duration_seconds))} more "
                f"(request `{request.id}`, a new card in <#{channel}>).",
            )
        if request.state == RequestState.pending:
            self._dm(
                request.requester_id,
                f"Your request `{request.id}` for {views.what(request, self.policy)} "
                f"(ticket {escape(request.ticket)}) is waiting for approval in <#{channel}>.",
            )
        elif request.route == Route.breakglass:
            self._thread(
                request,
                f":rotating_light: Break-glass by <@{request.requester_id}>: access granted "
                f"without approval. {self._approvers(request)}: please review (Acknowledge or "
                "Flag on the card).",
            )
        self._homes_of(request)

    def approval_counted(self, request: AccessRequest, approver_id: str) -> None:
        request = self._refresh_card(request.id) or request
        count, required = len(request.approved_by), request.approvals_required
        self._thread(
            request,
            f":ballot_box_with_check: <@{approver_id}> approved ({count} of {required}); "
            f"{required - count} more needed.",
        )
        self._homes_of(request)

    def request_decided(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        _, session = self._load(request.id)
        what = views.what(request, self.policy)
        text: str | None
        if request.state == RequestState.denied:
            reason = f" Reason: {escape(request.decision_note)}" if request.decision_note else ""
            by = f":x: <@{request.decided_by}> denied"
            text = f"{by} your request `{request.id}` for {what}.{reason}"
            self._thread(request, f"{by} the request.{reason}")
        elif request.state == RequestState.lapsed:
            text = (
                f":hourglass: Your request `{request.id}` for {what} lapsed: "
                f"{escape(request.decision_note or 'nobody decided in time')}. Ask again if you "
                "still need it."
            )
        elif request.state == RequestState.cancelled:
            text = None
        elif request.kind == RequestKind.extension and session and session.expires_at:
            ends = slack_date(session.expires_at)
            text = f":stopwatch: Extension `{request.id}` approved: your {what} now ends {ends}."
            by = views.decided_line(request)
            self._thread(self._story(request), f":stopwatch: Extended until {ends}. {by}")
        elif request.route == Route.breakglass:
            text = (
                f":rotating_light: Break-glass `{request.id}`: granting {what} now. The approvers "
                "are told and will review it."
            )
        elif request.route != Route.approvers:
            text = f"{views.decided_line(request)}: request `{request.id}`. Granting {what}…"
        else:
            who = ", ".join(f"<@{a}>" for a in request.approved_by) or f"<@{request.decided_by}>"
            text = (
                f":white_check_mark: {who} approved your request `{request.id}`. Granting {what}…"
            )
        if text:
            self._dm(request.requester_id, text)
        self._homes_of(request)

    def breakglass_escalated(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        system = self.policy.system(request.system_id)
        text = (
            f":rotating_light: *Break-glass not reviewed* — <@{request.requester_id}> took "
            f"{views.what(request, self.policy)} (`{request.id}`, ticket "
            f"{escape(request.ticket)}) without approval. {self._approvers(request)}: please "
            f"review it on the card (reminder {request.escalations})."
        )
        self._thread(request, text, broadcast=True)
        channel = system.breakglass.escalation_channel if system and system.breakglass else None
        if channel:
            self.client.chat_postMessage(channel=channel, text=text)

    def breakglass_reviewed(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        if request.review_state == ReviewState.flagged:
            self._thread(
                request,
                f":triangular_flag_on_post: <@{request.reviewed_by}> flagged this break-glass "
                "access; it is being ended now.",
            )
            self._dm(
                request.requester_id,
                f":triangular_flag_on_post: <@{request.reviewed_by}> flagged your break-glass "
                f"access `{request.id}`; it is being ended now.",
            )
        else:
            self._thread(
                request,
                f":ballot_box_with_check: Reviewed and acknowledged by <@{request.reviewed_by}>.",
            )
        self._homes_of(request)

    def session_granted(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        assert session.expires_at is not None
        self._thread(
            request,
            f":unlock: Granted to `{escape(session.identity or '')}`; "
            f"ends {slack_date(session.expires_at)}.",
        )
        kind = views.access_kind(self.policy.system(session.system_id))
        self._dm(
            session.requester_id,
            f"You have {escape(session.role_id)} {kind} to {escape(session.system_id)} until "
            f"{slack_date(session.expires_at)}.",
            views.granted_message(self.policy, session),
        )
        self._homes_of(request)

    def grant_failed(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        error = escape(session.last_error or "unknown error")
        what = views.what(session, self.policy)
        if session.state == SessionState.grant_unknown:
            self._thread(request, f":warning: Grant outcome unknown: {error}. Checking again.")
            self._dm(
                session.requester_id,
                f":warning: Granting {what} failed ({error}) and the system could not say "
                "whether it is in place. It is being checked again and revoked if found; ask "
                "for it again if you still need it.",
            )
        else:
            self._thread(request, f":warning: Grant failed: {error}. Nothing was granted.")
            system = self.policy.system(session.system_id)
            window = format_duration(self.policy.retry_within(system)) if system else None
            self._dm(
                session.requester_id,
                f":warning: Granting {what} failed: {error}. Nothing was granted; you or an "
                + (
                    f"approver can retry from the card within {window} of the approval."
                    if window
                    else "approver can ask again."
                ),
            )
        self._homes_of(request)

    def session_ended(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, f":lock: Access ended ({views.end_reason_text(session)}).")
        if session.attempts >= self._alert_after():
            self._thread(
                request,
                f":white_check_mark: Revoke of `{session.id}` completed after {session.attempts} "
                "failed attempts; the access is removed.",
                broadcast=True,
            )
        kind = views.access_kind(self.policy.system(session.system_id))
        self._dm(
            session.requester_id,
            f"Your {kind} {session.id} has ended. Please write a closeout note.",
            views.closeout_prompt(self.policy, session),
        )
        self._homes_of(request)

    def revoke_failed(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        retry = slack_date(session.next_attempt_at) if session.next_attempt_at else "soon"
        self._thread(
            request,
            f":rotating_light: Revoke failed (attempt {session.attempts}): "
            f"{escape(session.last_error or 'unknown error')}. Access is still in place; "
            f"retrying {retry}.",
            # Past the threshold the approver channel sees it too (once; then in the thread).
            broadcast=session.attempts == self._alert_after(),
        )
        self._homes_of(request)

    def _alert_after(self) -> int:
        return self._ctx.settings.revoke_alert_after if self._ctx is not None else 3

    def closeout_reminder(self, session: AccessSession) -> None:
        self._dm(
            session.requester_id,
            f"Reminder: the closeout note for {session.id} is missing.",
            views.closeout_prompt(self.policy, session, reminder=session.reminders_sent),
        )

    def closeout_missing(self, session: AccessSession) -> None:
        """After the last reminder: the approvers hear that the note is still missing."""
        request, _ = self._load(session.request_id)
        self._thread(
            request,
            f":memo: *Closeout note missing* — <@{session.requester_id}> has not said what "
            f"changed during {views.what(session, self.policy)} (`{session.id}`), after "
            f"{session.reminders_sent} reminders.",
            broadcast=True,
        )

    def closeout_recorded(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, views.closeout_thread_text(session))
        self._dm(
            session.requester_id, f":memo: Thanks, your closeout note for `{session.id}` is saved."
        )

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
            self._thread(request, text, broadcast=True)
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
    """People facts from Slack, cached: emails from users.info (scope users:read.email), user
    group members from usergroups.list + usergroups.users.list (scope usergroups:read)."""

    def __init__(
        self, client: WebClient, ttl_seconds: float = 600, group_ttl_seconds: float = 60
    ) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.group_ttl = group_ttl_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, ttl: float, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def email_for(self, user_id: str) -> str | None:
        def load() -> str | None:
            try:
                user = self.client.users_info(user=user_id)["user"]
            except SlackApiError as exc:
                raise ValueError(
                    f"cannot look up <@{user_id}> in Slack ({exc.response.get('error')})"
                ) from None
            return (user.get("profile") or {}).get("email")

        return self._cached(f"email:{user_id}", self.ttl, load)

    def _group_ids(self) -> dict[str, str]:
        def load() -> dict[str, str]:
            try:
                groups = self.client.usergroups_list()["usergroups"]
            except SlackApiError as exc:
                raise LookupError(
                    f"cannot list user groups ({exc.response.get('error')})"
                ) from None
            return {g["handle"]: g["id"] for g in groups if not g.get("date_delete")}

        return self._cached("groups", self.group_ttl, load)

    def group_id(self, handle: str) -> str | None:
        try:
            return self._group_ids().get(handle)
        except LookupError:
            return None

    def group_members(self, handle: str) -> set[str]:
        group_id = self._group_ids().get(handle)
        if group_id is None:
            raise LookupError(f"no user group @{handle} in this workspace")

        def load() -> set[str]:
            try:
                users = self.client.usergroups_users_list(usergroup=group_id)["users"]
            except SlackApiError as exc:
                raise LookupError(
                    f"cannot read @{handle}'s members ({exc.response.get('error')})"
                ) from None
            return set(users)

        return self._cached(f"group:{group_id}", self.group_ttl, load)
