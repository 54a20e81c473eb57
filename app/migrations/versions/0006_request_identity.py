"""request identity: what the approvers are shown and the session gets

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Three nullable columns on access_requests: the provider-side identity resolved when the request
was made, the email it came from, and the role's grant. Requests made before this revision
have none; their sessions resolve the identity at grant time as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("identity", sa.String(200), nullable=True))
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("grant_name", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("grant_name")
        batch.drop_column("email")
        batch.drop_column("identity")
