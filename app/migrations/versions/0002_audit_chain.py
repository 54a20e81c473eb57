"""audit chain: seq, prev_hash, hash, the chain head, and (PostgreSQL) append-only triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Events written before this migration are chained now, in the order they were written.
"""

from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""


def upgrade() -> None:
    from app.audit import GENESIS, HEAD_ID, chain_hash
    from app.models import AuditEvent

    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )

    connection = op.get_bind()
    table = cast(sa.Table, AuditEvent.__table__)
    previous, seq = GENESIS, 0
    # only the columns the table has at this revision (0009 adds policy_sha256 later)
    columns = [c for c in table.c if c.key not in ("seq", "prev_hash", "hash", "policy_sha256")]
    for row in connection.execute(sa.select(*columns).order_by(table.c.id)).mappings():
        seq += 1
        event = AuditEvent(**dict(row))
        event.seq = seq
        digest = chain_hash(previous, event)
        connection.execute(
            table.update()
            .where(table.c.id == row["id"])
            .values(seq=seq, prev_hash=previous, hash=digest)
        )
        previous = digest
    connection.execute(
        sa.table("audit_chain_head", sa.column("id"), sa.column("seq"), sa.column("hash"))
        .insert()
        .values(id=HEAD_ID, seq=seq, hash=previous)
    )

    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("seq", nullable=False)
        batch.alter_column("prev_hash", nullable=False)
        batch.alter_column("hash", nullable=False)
        batch.create_unique_constraint("uq_audit_events_seq", ["seq"])
    if connection.dialect.name == "postgresql":
        op.execute(APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_seq", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
