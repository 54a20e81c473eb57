"""Database tables: access requests, access sessions, the audit trail, the notice outbox and the
Slack requests seen lately (SQLAlchemy 2, typed). The tables of the features around them
(step-up, audit streaming, trackers, delegation, policy reload) are in app/models_features.py.

States are StrEnums stored as plain strings (no native enum type, so adding a state is a small
migration). All times are timezone-aware UTC, also on SQLite (`UTCDateTime`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """DateTime that always comes back timezone-aware in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use app.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RequestState(StrEnum):
    pending = "pending"
    approved = "approved"
    denied = "denied"
    cancelled = "cancelled"  # withdrawn by the requester
    lapsed = "lapsed"  # nobody decided within the policy's request_ttl


class RequestKind(StrEnum):
    access = "access"  # a new session
    extension = "extension"  # more time for an active session (`extends_session_id`)


class Route(StrEnum):
    """How a request was (or will be) decided."""

    approvers = "approvers"  # N distinct approvers click Approve
    staging = "staging"  # the system's tier is staging: approved at once
    auto = "auto"  # the role says auto_approve (read-only checks)
    oncall = "oncall"  # the requester was on call (PagerDuty) when asking
    breakglass = "breakglass"  # self-granted in an incident, reviewed afterwards


class ReviewState(StrEnum):
    """The retro-review of a break-glass access."""

    due = "due"
    acknowledged = "acknowledged"
    flagged = "flagged"


class SessionState(StrEnum):
    granting = "granting"
    active = "active"
    grant_failed = "grant_failed"
    # The grant call failed without a clear refusal and `check` could not tell whether the
    # access is in place: checked again with backoff, revoked if found.
    grant_unknown = "grant_unknown"
    revoking = "revoking"
    revoke_failing = "revoke_failing"
    ended = "ended"


#: States in which the person may hold the access (used for overlapping sessions).
HOLDING_STATES = (SessionState.granting, SessionState.active)


class EndReason(StrEnum):
    expired = "expired"
    released = "released"
    admin = "admin"
    flagged = "flagged"  # a break-glass access flagged in its retro-review
    unconfirmed = "unconfirmed"  # a grant whose outcome was unknown, found in place later
    incident_resolved = "incident_resolved"  # its ticket's incident was resolved (trackers)


class CloseoutState(StrEnum):
    not_due = "not_due"
    prompted = "prompted"
    closed_out = "closed_out"


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    pass


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_requests_state_decide_by", "state", "decide_by"),
        Index("ix_requests_review_escalation", "review_state", "next_escalation_at"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(32), index=True)
    system_id: Mapped[str] = mapped_column(String(60))
    role_id: Mapped[str] = mapped_column(String(40))
    duration_seconds: Mapped[int] = mapped_column(Integer)
    ticket: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[RequestState] = mapped_column(_enum(RequestState), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[RequestKind] = mapped_column(_enum(RequestKind), default=RequestKind.access)
    extends_session_id: Mapped[str | None] = mapped_column(String(16), index=True)
    route: Mapped[Route] = mapped_column(_enum(Route), default=Route.approvers)
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    decision_note: Mapped[str | None] = mapped_column(Text)  # a denial's reason, an auto rule
    decide_by: Mapped[datetime | None] = mapped_column(UTCDateTime)  # request_ttl deadline
    review_state: Mapped[ReviewState | None] = mapped_column(_enum(ReviewState))
    review_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    reviewed_by: Mapped[str | None] = mapped_column(String(32))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the approvers are shown and what the session will get: the provider-side identity
    # (resolved when the request is made), the email it came from, and the role's grant.
    identity: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    grant_name: Mapped[str | None] = mapped_column(String(200))
    # The ticket as its tracker answered before anyone was asked (app/operations/tickets.py):
    # the tracker's type (None: no tracker handles it), whether it was verified (False: the
    # tracker could not be asked; `ticket_note` says why) and what the card shows.
    ticket_tracker: Mapped[str | None] = mapped_column(String(40))
    ticket_verified: Mapped[bool | None] = mapped_column(Boolean)
    ticket_note: Mapped[str | None] = mapped_column(Text)
    ticket_title: Mapped[str | None] = mapped_column(String(300))
    ticket_status: Mapped[str | None] = mapped_column(String(100))
    ticket_assignee: Mapped[str | None] = mapped_column(String(300))
    ticket_url: Mapped[str | None] = mapped_column(String(500))
    # Busy approvers (app/operations/waiting_request.py): each sent once, so set once.
    approvers_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_to: Mapped[str | None] = mapped_column(String(32))  # the escalation channel

    # Loaded where it is shown (the card, an approver's queue: `with_approvals`), not with
    # every request: most loads (a revoke, attaching a card) never look at it.
    approvals: Mapped[list[Approval]] = relationship(
        lazy="select", order_by="Approval.id", back_populates="request"
    )

    @property
    def approved_by(self) -> list[str]:
        return [a.approver_id for a in self.approvals]


class Approval(Base):
    """One approver's Approve on a request (N of M: the request is approved at N rows). The
    unique key makes a repeated click by the same person count once."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id"))
    approver_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    on_behalf_of: Mapped[str | None] = mapped_column(String(32))  # a delegation: "lea for tom"

    request: Mapped[AccessRequest] = relationship(back_populates="approvals")


class AccessSession(Base):
    __tablename__ = "access_sessions"
    __table_args__ = (
        Index("ix_sessions_state_expires", "state", "expires_at"),
        Index("ix_sessions_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_sessions_holder", "system_id", "identity", "grant_name", "state"),
        Index("ix_sessions_closeout_due", "closeout_state", "next_reminder_at"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    requester_id: Mapped[str] = mapped_column(String(32), index=True)
    system_id: Mapped[str] = mapped_column(String(60))
    role_id: Mapped[str] = mapped_column(String(40))
    grant_name: Mapped[str] = mapped_column(String(200))
    identity: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    state: Mapped[SessionState] = mapped_column(_enum(SessionState))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[EndReason | None] = mapped_column(_enum(EndReason))
    ended_by: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    closeout_state: Mapped[CloseoutState] = mapped_column(
        _enum(CloseoutState), default=CloseoutState.not_due
    )
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    next_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closeout_changes: Mapped[str | None] = mapped_column(Text)
    closeout_followups: Mapped[str | None] = mapped_column(Text)
    closeout_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Always loaded with the session (inner join: the foreign key is not null), so notices can
    # read the ticket and card of a session after its transaction has closed.
    request: Mapped[AccessRequest] = relationship(lazy="joined", innerjoin=True)


class AuditEvent(Base):
    """One step of one access. Append-only and hash-chained (see app/audit.py): `seq` numbers
    the chain without gaps, `hash = sha256(prev_hash + canonical JSON of the event)`."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    event: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(16), index=True)
    session_id: Mapped[str | None] = mapped_column(String(16))
    system_id: Mapped[str | None] = mapped_column(String(60))
    role_id: Mapped[str | None] = mapped_column(String(40))
    ticket: Mapped[str | None] = mapped_column(String(200))
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
    policy_sha256: Mapped[str | None] = mapped_column(String(64))  # the policy in force (0009)

    @property
    def detail(self) -> dict[str, Any]:
        return json.loads(self.detail_json or "{}")


class AuditChainHead(Base):
    """The one row that says where the audit chain ends. Appending locks it (SELECT … FOR
    UPDATE), so writers in several processes or replicas extend one chain, never fork it."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class PendingNotice(Base):
    """A Slack notice that Slack refused even after the client's retries, kept to be sent again
    (app/delivery/): its kind (a NoticeKind value), the request and session it is about, and its
    arguments as JSON. Deleted once delivered; `failed_at` is set when it is given up."""

    __tablename__ = "pending_notices"
    __table_args__ = (Index("ix_pending_notices_due", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice: Mapped[str] = mapped_column(String(60))
    request_id: Mapped[str | None] = mapped_column(String(16), index=True)
    session_id: Mapped[str | None] = mapped_column(String(16))
    args_json: Mapped[str] = mapped_column(Text)  # {"args": [...], "kwargs": {...}}
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SeenSlackRequest(Base):
    """A Slack request answered lately, kept so a replica recognises it again: `key` is the
    sha256 of a signed request's timestamp and signature, or of an Events API `event_id`
    (app/slack/replays.py). Rows older than the signature window are deleted by a timer."""

    __tablename__ = "seen_slack_requests"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
