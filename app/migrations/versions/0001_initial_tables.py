"""initial tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 11:07:31.854037
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("requester_id", sa.String(length=32), nullable=False),
        sa.Column("system_id", sa.String(length=60), nullable=False),
        sa.Column("role_id", sa.String(length=40), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("ticket", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "approved", "denied", name="requeststate", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("card_channel", sa.String(length=32), nullable=True),
        sa.Column("card_ts", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_requests_requester_id"), ["requester_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_access_requests_state"), ["state"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=16), nullable=True),
        sa.Column("session_id", sa.String(length=16), nullable=True),
        sa.Column("system_id", sa.String(length=60), nullable=True),
        sa.Column("role_id", sa.String(length=40), nullable=True),
        sa.Column("ticket", sa.String(length=200), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "access_sessions",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=16), nullable=False),
        sa.Column("requester_id", sa.String(length=32), nullable=False),
        sa.Column("system_id", sa.String(length=60), nullable=False),
        sa.Column("role_id", sa.String(length=40), nullable=False),
        sa.Column("grant_name", sa.String(length=200), nullable=False),
        sa.Column("identity", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "granting",
                "active",
                "grant_failed",
                "revoking",
                "revoke_failing",
                "ended",
                name="sessionstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "end_reason",
            sa.Enum("expired", "released", "admin", name="endreason", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "closeout_state",
            sa.Enum(
                "not_due",
                "prompted",
                "closed_out",
                name="closeoutstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closeout_changes", sa.Text(), nullable=True),
        sa.Column("closeout_followups", sa.Text(), nullable=True),
        sa.Column("closeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    with op.batch_alter_table("access_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_sessions_requester_id"), ["requester_id"], unique=False
        )
        batch_op.create_index(
            "ix_sessions_closeout_due", ["closeout_state", "next_reminder_at"], unique=False
        )
        batch_op.create_index(
            "ix_sessions_holder", ["system_id", "identity", "grant_name", "state"], unique=False
        )
        batch_op.create_index("ix_sessions_state_expires", ["state", "expires_at"], unique=False)
        batch_op.create_index(
            "ix_sessions_state_next_attempt", ["state", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("access_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_state_next_attempt")
        batch_op.drop_index("ix_sessions_state_expires")
        batch_op.drop_index("ix_sessions_holder")
        batch_op.drop_index("ix_sessions_closeout_due")
        batch_op.drop_index(batch_op.f("ix_access_sessions_requester_id"))

    op.drop_table("access_sessions")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_request_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_requests_state"))
        batch_op.drop_index(batch_op.f("ix_access_requests_requester_id"))

    op.drop_table("access_requests")
