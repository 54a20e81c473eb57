"""The tables of the features around the access lifecycle, one section each: step-up logins
under way, audit-sink cursors, ticket comments, delegations and the shared policy-reload row.
Same rules as app/models.py (typed, UTC times), on the same `Base`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, UTCDateTime

# --- step-up approvals (app/operations/step_up.py) ------------------------------------------


class StepUpLogin(Base):
    """A step-up confirmation under way (app/operations/step_up.py): the link's token, kept
    only as its sha256 (`id`), bound to one approver, one request and one decision (`purpose`:
    approve, or break the glass), valid until `expires_at`, single use (`used_at`). When the
    link is opened, the login's `state`, `nonce` and PKCE `code_verifier` are kept here, so
    any replica can finish the login."""

    __tablename__ = "step_up_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str | None] = mapped_column(String(64), unique=True)
    nonce: Mapped[str | None] = mapped_column(String(64))
    code_verifier: Mapped[str | None] = mapped_column(String(128))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- audit streaming (app/audit_sinks/) ----------------------------------------------------


class AuditSinkCursor(Base):
    """How far one audit sink (a SIEM, a bucket, a file) has been sent the audit trail.
    `delivered_seq` is the last event the sink confirmed; `sending_through`, while set, is the
    last seq of the batch being sent (kept after a failure or a crash, so the same range goes
    again, with the same idempotency key); the lease says which process delivers right now."""

    __tablename__ = "audit_sink_cursors"

    sink_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the URL
    sink_url: Mapped[str] = mapped_column(String(500))  # as shown: no query, no user:password
    delivered_seq: Mapped[int] = mapped_column(Integer, default=0)
    sending_through: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failures in a row
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- ticket trackers (app/trackers/) --------------------------------------------------------


class TicketComment(Base):
    """One comment on a session's ticket (`event`: granted, ended, closeout), so it is posted
    once however often its notice is delivered, and its failure shown in the card's thread
    once however often it is retried (app/operations/ticket_comments.py)."""

    __tablename__ = "ticket_comments"
    __table_args__ = (UniqueConstraint("session_id", "event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("access_sessions.id"))
    event: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    failure_shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- busy approvers (app/operations/delegation.py) -----------------------------------------


class Delegation(Base):
    """An approver (`from_id`) hands their approvals to another approver of the same systems
    (`to_id`) from `starts_at` until `ends_at`, or until ended early (`ended_at`)."""

    __tablename__ = "delegations"
    __table_args__ = (Index("ix_delegations_to_ends", "to_id", "ends_at"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    from_id: Mapped[str] = mapped_column(String(32), index=True)
    to_id: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))  # a Slack user id, or cli:<login>
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(64))


class PolicyReload(Base):
    """The one row replicas share policy reloads through (app/policy_reload.py): `prod-access
    policy reload` raises `generation` with the file's sha256 and every replica polls it;
    `recorded_sha256` / `refused_sha256` are the last policy change recorded and the last
    refusal announced, so each is audited once however many replicas see it."""

    __tablename__ = "policy_reload"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    requested_sha256: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recorded_sha256: Mapped[str | None] = mapped_column(String(64))
    refused_sha256: Mapped[str | None] = mapped_column(String(64))
