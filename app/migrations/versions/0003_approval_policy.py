"""approval policy: N-of-M approvals, routes (staging, auto, on-call, break-glass), request TTL,
break-glass review and escalation, extensions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Requests written before this migration were all decided by approvers, one approval each.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(*values: str) -> sa.Enum:
    return sa.Enum(*values, native_enum=False, create_constraint=False, length=20)


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(
            sa.Column("kind", _enum("access", "extension"), nullable=False, server_default="access")
        )
        batch.add_column(sa.Column("extends_session_id", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column(
                "route",
                _enum("approvers", "staging", "auto", "oncall", "breakglass"),
                nullable=False,
                server_default="approvers",
            )
        )
        batch.add_column(
            sa.Column("approvals_required", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("decision_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("decide_by", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("review_state", _enum("due", "acknowledged", "flagged"), nullable=True)
        )
        batch.add_column(sa.Column("review_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_escalation_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("escalations", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reviewed_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_access_requests_extends_session_id", ["extends_session_id"])
        batch.create_index("ix_requests_state_decide_by", ["state", "decide_by"])
        batch.create_index("ix_requests_review_escalation", ["review_state", "next_escalation_at"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(16), sa.ForeignKey("access_requests.id"), nullable=False),
        sa.Column("approver_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "approver_id"),
    )
    # Decisions made before N-of-M existed are one approval each.
    op.execute(
        "INSERT INTO approvals (request_id, approver_id, at) "
        "SELECT id, decided_by, decided_at FROM access_requests "
        "WHERE state = 'approved' AND decided_by IS NOT NULL AND decided_at IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("approvals")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_index("ix_requests_review_escalation")
        batch.drop_index("ix_requests_state_decide_by")
        batch.drop_index("ix_access_requests_extends_session_id")
        for column in (
            "reviewed_at",
            "reviewed_by",
            "escalations",
            "next_escalation_at",
            "review_due_at",
            "review_state",
            "decide_by",
            "decision_note",
            "approvals_required",
            "route",
            "extends_session_id",
            "kind",
        ):
            batch.drop_column(column)
