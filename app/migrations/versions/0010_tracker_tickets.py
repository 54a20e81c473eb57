"""tracker tickets: what the tracker said about a request's ticket, and comments posted once

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

Columns added to access_requests (all nullable: requests made before stay as they were, with
no tracker) and a new table, ticket_comments.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("ticket_tracker", sa.String(40)),
    ("ticket_verified", sa.Boolean()),
    ("ticket_note", sa.Text()),
    ("ticket_title", sa.String(300)),
    ("ticket_status", sa.String(100)),
    ("ticket_assignee", sa.String(300)),
    ("ticket_url", sa.String(500)),
)


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(16), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failure_shown_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["access_sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "event"),
    )


def downgrade() -> None:
    op.drop_table("ticket_comments")
    with op.batch_alter_table("access_requests") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
