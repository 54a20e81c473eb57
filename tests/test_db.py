"""The SQLite set-up: writers take one lock (BEGIN IMMEDIATE behind a Python lock), readers
(`reading`) take none, so a read never queues behind a revoke's transaction. Migrations apply
and undo on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app import clock
from app.db import alembic_config, make_engine, make_sessionmaker, reading, transaction, upgrade
from tests.conftest import empty_database


def test_a_read_does_not_wait_for_an_open_write_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    writing, release, committed = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        with transaction(sessions) as db:
            db.execute(text("UPDATE audit_chain_head SET seq = seq"))
            writing.set()
            release.wait(10)  # a read that waited for this commit would wait all of it
        committed.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(5)
    with reading(sessions) as db:
        assert db.execute(text("SELECT count(*) FROM access_sessions")).scalar() == 0
    read_before_commit = not committed.is_set()
    release.set()
    thread.join()
    assert read_before_commit, "the read waited for the writer to commit"


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_migration_0005_adds_and_removes_the_seen_slack_requests_table(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = empty_database(database, tmp_path, request)
    config = alembic_config(url)
    command.upgrade(config, "0004")
    engine = make_engine(url)
    assert "seen_slack_requests" not in inspect(engine).get_table_names()

    command.upgrade(config, "0005")
    tables = inspect(engine)
    assert [c["name"] for c in tables.get_columns("seen_slack_requests")] == ["key", "seen_at"]
    assert tables.get_pk_constraint("seen_slack_requests")["constrained_columns"] == ["key"]
    assert [i["column_names"] for i in tables.get_indexes("seen_slack_requests")] == [["seen_at"]]
    with engine.begin() as conn:  # the unique key holds: a second row with one key is refused
        insert = text("INSERT INTO seen_slack_requests (key, seen_at) VALUES ('k', :at)")
        conn.execute(insert, {"at": clock.now()})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"at": clock.now()})

    command.downgrade(config, "0004")
    assert "seen_slack_requests" not in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_migration_0006_adds_and_removes_the_request_identity_columns(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = empty_database(database, tmp_path, request)
    config = alembic_config(url)
    command.upgrade(config, "0005")
    engine = make_engine(url)
    added = {"identity", "email", "grant_name"}
    assert not added & {c["name"] for c in inspect(engine).get_columns("access_requests")}
    command.upgrade(config, "0006")
    assert added <= {c["name"] for c in inspect(engine).get_columns("access_requests")}
    command.downgrade(config, "0005")
    assert not added & {c["name"] for c in inspect(engine).get_columns("access_requests")}
    engine.dispose()
