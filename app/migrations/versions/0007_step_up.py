"""step-up logins: approvals confirmed by a fresh OpenID Connect login

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

A new table only. Its rows live minutes (a link is valid for five), so a downgrade loses
nothing worth keeping: the audit trail records every step-up that happened.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "step_up_logins",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("nonce", sa.String(64), nullable=True),
        sa.Column("code_verifier", sa.String(128), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["request_id"], ["access_requests.id"]),
        sa.UniqueConstraint("state", name="uq_step_up_logins_state"),
    )
    with op.batch_alter_table("step_up_logins") as batch:
        batch.create_index("ix_step_up_logins_request_id", ["request_id"])


def downgrade() -> None:
    with op.batch_alter_table("step_up_logins") as batch:
        batch.drop_index("ix_step_up_logins_request_id")
    op.drop_table("step_up_logins")
