"""Migration 0011 (busy approvers) applies and undoes on SQLite and PostgreSQL: the columns that
record a reminder, an escalation and an approval given for someone, and the delegations table."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from app.db import alembic_config, make_engine
from tests.conftest import empty_database


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_migration_0011_adds_and_removes_the_busy_approver_columns_and_delegations(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = empty_database(database, tmp_path, request)
    config = alembic_config(url)
    engine = make_engine(url)
    added = {"approvers_reminded_at", "escalated_at", "escalated_to"}

    def shape() -> tuple[set[str], set[str], bool]:
        found = inspect(engine)
        return (
            {c["name"] for c in found.get_columns("access_requests")} & added,
            {c["name"] for c in found.get_columns("approvals")} & {"on_behalf_of"},
            found.has_table("delegations"),
        )

    command.upgrade(config, "0010")
    assert shape() == (set(), set(), False)
    command.upgrade(config, "0011")
    assert shape() == (added, {"on_behalf_of"}, True)
    command.downgrade(config, "0010")
    assert shape() == (set(), set(), False)
    engine.dispose()
