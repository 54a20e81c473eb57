"""audit sinks: one delivery cursor per sink the audit trail is streamed to

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

A new table only; nothing written before needs changing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_sink_cursors",
        sa.Column("sink_id", sa.String(64), nullable=False),
        sa.Column("sink_url", sa.String(500), nullable=False),
        sa.Column("delivered_seq", sa.Integer(), nullable=False),
        sa.Column("sending_through", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink_id"),
    )


def downgrade() -> None:
    op.drop_table("audit_sink_cursors")
