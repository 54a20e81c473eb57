"""policy reload: the row replicas share reloads through, and each audit event's policy hash

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

`policy_reload` holds one row: `prod-access policy reload` raises its generation with the file's
sha256, every replica polls it; `recorded_sha256` and `refused_sha256` make a change (or a
refusal) audited once, however many replicas see it. `audit_events.policy_sha256` is the hash of
the policy in force when an event was recorded; it is nullable, and events written before it
stay as they are (their hash never covered it, app/audit.py leaves it out when absent).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("policy_sha256", sa.String(64), nullable=True))
    reload = op.create_table(
        "policy_reload",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("requested_sha256", sa.String(64), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_sha256", sa.String(64), nullable=True),
        sa.Column("refused_sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(reload, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("policy_reload")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("policy_sha256")
