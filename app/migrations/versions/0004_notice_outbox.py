"""notice outbox: Slack notices that Slack refused, kept to be sent again

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

A new table only; nothing written before needs changing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice", sa.String(60), nullable=False),
        sa.Column("request_id", sa.String(16), nullable=True),
        sa.Column("session_id", sa.String(16), nullable=True),
        sa.Column("args_json", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_notices") as batch:
        batch.create_index("ix_pending_notices_request_id", ["request_id"])
        batch.create_index("ix_pending_notices_due", ["failed_at", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("pending_notices") as batch:
        batch.drop_index("ix_pending_notices_due")
        batch.drop_index("ix_pending_notices_request_id")
    op.drop_table("pending_notices")
