"""seen Slack requests: what was answered lately, so a replay or an Events API retry is known

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A new table only; nothing written before needs changing. Its rows live ten minutes, so a
downgrade loses nothing worth keeping.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_slack_requests",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("seen_slack_requests") as batch:
        batch.create_index("ix_seen_slack_requests_seen_at", ["seen_at"])


def downgrade() -> None:
    with op.batch_alter_table("seen_slack_requests") as batch:
        batch.drop_index("ix_seen_slack_requests_seen_at")
    op.drop_table("seen_slack_requests")
