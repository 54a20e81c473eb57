"""busy approvers: reminders and escalations sent, approvals given for someone, delegations

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

Three nullable columns on access_requests record the reminder and the escalation a pending
request was sent (so neither is sent twice, whichever replica comes first); one nullable column
on approvals names the approver a delegate approved for; a new table holds the delegations.
Nothing written before needs changing: old requests have been reminded of nothing yet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(
            sa.Column("approvers_reminded_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("escalated_to", sa.String(32), nullable=True))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("on_behalf_of", sa.String(32), nullable=True))
    op.create_table(
        "delegations",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("from_id", sa.String(32), nullable=False),
        sa.Column("to_id", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delegations_from_id", "delegations", ["from_id"])
    op.create_index("ix_delegations_to_ends", "delegations", ["to_id", "ends_at"])


def downgrade() -> None:
    op.drop_index("ix_delegations_to_ends", table_name="delegations")
    op.drop_index("ix_delegations_from_id", table_name="delegations")
    op.drop_table("delegations")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("on_behalf_of")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("escalated_to")
        batch.drop_column("escalated_at")
        batch.drop_column("approvers_reminded_at")
