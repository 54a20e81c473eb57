"""Tell people in Slack what happened: the card in the approver channel (updated in place), its
thread (one thread tells the story of one access), DMs to the requester, and the Home tabs.
The notifier writes no text itself: it loads the rows, asks app/slack/blocks/ for what to say
(card, thread, dm, home, review), and sends it.

Every method runs after the state change is committed and re-reads the rows; it is called by
the outbox (app/delivery/outbox.py, through app/slack/delivery.py), never by an operation: an
error it raises keeps the notice to be sent again later, so a Slack outage delays a message and
never blocks or loses a grant or a revoke.
"""

from __future__ import annotations

import threading
import time

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from app import clock, policy_busy
from app.context import AppContext
from app.db import reading
from app.models import AccessRequest, AccessSession, RequestKind, RequestState, ReviewState, Route
from app.operations import delegation, people, queries
from app.operations.decide_request import may_decide
from app.operations.request_access import attach_card
from app.policy import Policy
from app.review import Review
from app.slack import busy_notices
from app.slack.blocks import busy, card, dm, home, policy_reload, thread, ticket
from app.slack.blocks import delegation as blocks_delegation
from app.slack.blocks.review import review_upload

log = structlog.get_logger(__name__)
HOME_FRESH_SECONDS = 3600  # an opened Home tab is republished on changes for this long


class SlackNotifier:
    def __init__(self, client: WebClient, ctx: AppContext) -> None:
        self.client = client
        self.db = ctx.db
        self._ctx = ctx  # card ids, approver groups and settings need the context
        self._viewers: dict[str, float] = {}  # who opened the Home tab, when (monotonic)
        self._viewers_lock = threading.Lock()

    @property
    def policy(self) -> Policy:
        """The policy in force now (a reload replaces it; a notice says what is true now)."""
        return self._ctx.policy

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
        if system is None:
            return ""
        shown = people.mentions(self._ctx, self.policy.approvers_of(system, request.role_id))
        away = delegation.stand_ins(self._ctx, request)
        return f"{shown} · {blocks_delegation.stand_ins_line(away)}" if away else shown

    def _refresh_card(self, request_id: str) -> AccessRequest | None:
        request, session = self._load(request_id)
        if request is None or not (request.card_channel and request.card_ts):
            return request
        self.client.chat_update(
            channel=request.card_channel,
            ts=request.card_ts,
            text=card.card_text(request),
            blocks=card.approval_card(self.policy, request, session, self._approvers(request)),
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
        if system is not None:
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
        for user, shown in homes.items():
            self.client.views_publish(user_id=user, view=home.home_view(self.policy, shown, now))

    def _home(
        self,
        db: Session,
        user: str,
        pending: list[AccessRequest],
        reviews: list[AccessRequest],
    ) -> home.Home:
        def mine_to_decide(request: AccessRequest) -> bool:
            return user not in request.approved_by and may_decide(self._ctx, request, user)

        return home.Home(
            user_id=user,
            delegations=delegation.of_person(db, user, clock.now()),
            approves=bool(delegation.systems_approved_by(self._ctx, user)),
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
                text=card.card_text(request),
                blocks=card.approval_card(self.policy, request, session, self._approvers(request)),
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            self._dm(request.requester_id, dm.card_not_posted(request, channel, error))
            raise
        attach_card(self._ctx, request.id, posted["channel"], posted["ts"])
        request.card_channel, request.card_ts = posted["channel"], posted["ts"]
        if card.reason_cut(request):
            self._thread(request, thread.full_reason(request))
        self._tell_notify(request)
        if request.kind == RequestKind.extension:
            self._thread(self._story(request), thread.extension_asked(request, channel))
        if request.state == RequestState.pending:
            self._dm(request.requester_id, dm.waiting_for_approval(self.policy, request, channel))
        elif request.route == Route.breakglass:
            self._thread(request, thread.breakglass_taken(request, self._approvers(request)))
        self._homes_of(request)

    def approval_counted(self, request: AccessRequest, approver_id: str) -> None:
        request = self._refresh_card(request.id) or request
        self._thread(request, thread.approval_counted(request, approver_id))
        self._homes_of(request)

    def request_decided(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        _, session = self._load(request.id)
        line = thread.decided(request, session)
        if line is not None:
            # A denial is told in the request's own thread, an extension's new end in the story's.
            story = request if request.state == RequestState.denied else self._story(request)
            self._thread(story, line)
        text = dm.decision(self.policy, request, session)
        if text:
            self._dm(request.requester_id, text)
        self._homes_of(request)

    def breakglass_escalated(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        system = self.policy.system(request.system_id)
        text = thread.breakglass_unreviewed(self.policy, request, self._approvers(request))
        self._thread(request, text, broadcast=True)
        channel = system.breakglass.escalation_channel if system and system.breakglass else None
        if channel:
            self.client.chat_postMessage(channel=channel, text=text)

    def breakglass_reviewed(self, request: AccessRequest) -> None:
        request = self._refresh_card(request.id) or request
        self._thread(request, thread.reviewed(request))
        if request.review_state == ReviewState.flagged:
            self._dm(request.requester_id, dm.breakglass_flagged(request))
        self._homes_of(request)

    def session_granted(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, thread.granted(session))
        self._dm(
            session.requester_id,
            dm.granted_text(self.policy, session),
            dm.granted_message(self.policy, session),
        )
        self._homes_of(request)

    def grant_failed(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, thread.grant_failed(session))
        self._dm(session.requester_id, dm.grant_failed(self.policy, session))
        self._homes_of(request)

    def session_ended(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, thread.ended(session))
        if session.attempts >= self._alert_after():
            self._thread(request, thread.revoke_completed(session), broadcast=True)
        self._dm(
            session.requester_id,
            dm.ended_text(self.policy, session),
            dm.closeout_prompt(self.policy, session),
        )
        self._homes_of(request)

    def revoke_failed(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(
            request,
            thread.revoke_failed(session),
            # Past the threshold the approver channel sees it too (once; then in the thread).
            broadcast=session.attempts == self._alert_after(),
        )
        self._homes_of(request)

    def _alert_after(self) -> int:
        return self._ctx.settings.revoke_alert_after

    def closeout_reminder(self, session: AccessSession) -> None:
        self._dm(
            session.requester_id,
            dm.reminder_text(session),
            dm.closeout_prompt(self.policy, session, reminder=session.reminders_sent),
        )

    def closeout_missing(self, session: AccessSession) -> None:
        """After the last reminder: the approvers hear that the note is still missing."""
        request, _ = self._load(session.request_id)
        self._thread(request, thread.closeout_missing(self.policy, session), broadcast=True)

    def closeout_recorded(self, session: AccessSession) -> None:
        request = self._refresh_card(session.request_id)
        self._thread(request, thread.closeout_note(session))
        self._dm(session.requester_id, dm.closeout_saved(session))

    def ticket_comment_failed(
        self, session: AccessSession, event: str, error: str, outcome: str
    ) -> None:
        """A comment on the ticket could not be posted (said once, not on every retry)."""
        request, _ = self._load(session.request_id)
        self._thread(request, ticket.comment_failed(session, event, error, outcome))

    def drift_found(self, session: AccessSession, detail: str) -> None:
        """Reconciliation found access that does not match the session: said in the card's
        thread and, broadcast from there, in the approver channel (or plainly in the channel
        when the card was never posted)."""
        text = thread.drift(self.policy, session, detail)
        request, _ = self._load(session.request_id)
        if request is not None and request.card_channel and request.card_ts:
            self._thread(request, text, broadcast=True)
            return
        system = self.policy.system(session.system_id)
        if system is not None:
            self.client.chat_postMessage(channel=self.policy.approver_channel(system), text=text)

    def approvers_reminded(self, request: AccessRequest) -> None:
        busy_notices.approvers_reminded(self, request)

    def request_escalated(self, request: AccessRequest) -> None:
        busy_notices.request_escalated(self, request)

    def delegation_changed(self, delegation_id: str) -> None:
        busy_notices.delegation_changed(self, delegation_id)

    def _tell_notify(self, request: AccessRequest) -> None:
        """The policy's `notify` people hear of a new request in its card's thread."""
        system = self.policy.system(request.system_id)
        told = policy_busy.notify_of(self.policy, system, request.role_id) if system else []
        if told:
            mentions = people.mentions(self._ctx, told)
            self._thread(request, busy.notify_line(self.policy, request, mentions))

    def policy_reload_refused(self, channel: str, sha256: str, reason: str) -> None:
        """A new policy file was refused whole: the approver channel hears why."""
        text = policy_reload.reload_refused(sha256, reason)
        self.client.chat_postMessage(channel=channel, text=text)


def publish_review(client: WebClient, channel: str, review: Review) -> None:
    """The review as a short summary in the channel with the Markdown report attached."""
    upload = review_upload(review)
    client.files_upload_v2(
        channel=channel,
        filename=upload.filename,
        title=upload.title,
        content=upload.content,
        initial_comment=upload.initial_comment,
    )
