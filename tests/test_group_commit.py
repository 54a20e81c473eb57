"""Group commit (app/group_commit.py): the writes Slack requests make before their ack share
transactions, and nothing about what each caller sees changes: its result comes only once its
write is committed, a bad write fails its own caller only, the audit chain stays one chain, and
the write runs with its caller's context. On SQLite and PostgreSQL."""

from __future__ import annotations

import contextvars
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app import audit, clock
from app.db import engine_of, insert_values, make_engine, make_sessionmaker, reading
from app.group_commit import GroupCommit
from app.models import AuditEvent, SeenSlackRequest
from app.slack.replays import remember
from tests.conftest import sqlite_migrated_template


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_migrated_database")
    else:
        path = tmp_path / "db.sqlite"
        shutil.copyfile(sqlite_migrated_template(), path)
        url = f"sqlite:///{path}"
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def writer(sessions: sessionmaker[Session]) -> Iterator[GroupCommit]:
    group = GroupCommit(sessions)
    group.start()
    yield group
    group.stop()


def commits_counted(sessions: sessionmaker[Session]) -> list[int]:
    counted = [0]

    @event.listens_for(engine_of(sessions), "commit")
    def _count(_conn: object) -> None:
        counted[0] += 1

    return counted


def held(writer: GroupCommit) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Keep the writer busy with one write until released, so that what is queued meanwhile
    is one batch."""
    busy, release = threading.Event(), threading.Event()

    def hold(_db: Session) -> None:
        busy.set()
        assert release.wait(10)

    thread = threading.Thread(target=writer.write, args=(hold,))
    thread.start()
    assert busy.wait(5)
    return busy, release, thread


def append(actor: str) -> Callable[[Session], int]:
    def write(db: Session) -> int:
        return audit.record(db, "requested", actor, reason="group commit").seq

    return write


def queued(writer: GroupCommit, count: int) -> int:
    """Wait until `count` writes are queued behind the held one."""
    for _ in range(500):
        if writer._queue.qsize() >= count:
            return count
        threading.Event().wait(0.01)
    raise AssertionError(f"{writer._queue.qsize()} writes queued, not {count}")


def test_writes_queued_together_share_one_commit_and_each_sees_its_own_committed_row(
    sessions: sessionmaker[Session], writer: GroupCommit
) -> None:
    commits = commits_counted(sessions)
    _busy, release, holder = held(writer)
    seen_at_return: dict[str, bool] = {}

    def one(actor: str) -> int:
        seq = writer.write(append(actor))
        with reading(sessions) as db:  # another connection: committed, not just written
            found = db.scalar(select(func.count()).where(AuditEvent.actor == actor))
        seen_at_return[actor] = found == 1
        return seq

    actors = [f"U0GROUP{i:02d}" for i in range(12)]
    with ThreadPoolExecutor(len(actors)) as pool:
        futures = [pool.submit(one, actor) for actor in actors]
        queued(writer, len(actors))
        release.set()
        seqs = sorted(f.result(timeout=10) for f in futures)
    holder.join(5)

    assert seqs == list(range(1, len(actors) + 1))
    assert all(seen_at_return.values()) and len(seen_at_return) == len(actors)
    # the held write touched no table (no transaction reached the database); the twelve queued
    # behind it were committed together
    assert commits[0] == 1
    with reading(sessions) as db:
        verdict = audit.verify(db)
    assert verdict.ok and verdict.count == len(actors), verdict


def test_a_write_that_fails_fails_its_own_caller_and_the_rest_of_its_batch_commits(
    sessions: sessionmaker[Session], writer: GroupCommit
) -> None:
    _busy, release, holder = held(writer)

    def bad(db: Session) -> None:
        audit.record(db, "requested", "U0BAD", reason="rolled back")
        raise RuntimeError("this write is broken")

    with ThreadPoolExecutor(4) as pool:
        good = [pool.submit(writer.write, append(f"U0GOOD{i}")) for i in range(3)]
        queued(writer, 3)
        broken = pool.submit(writer.write, bad)
        queued(writer, 4)
        release.set()
        with pytest.raises(RuntimeError, match="this write is broken"):
            broken.result(timeout=10)
        assert sorted(f.result(timeout=10) for f in good) == [1, 2, 3]
    holder.join(5)
    with reading(sessions) as db:
        actors = set(db.scalars(select(AuditEvent.actor)))
        verdict = audit.verify(db)
    assert actors == {"U0GOOD0", "U0GOOD1", "U0GOOD2"}
    assert verdict.ok and verdict.count == 3, verdict


def test_a_key_remembered_twice_in_one_batch_is_new_only_once(
    sessions: sessionmaker[Session], writer: GroupCommit
) -> None:
    _busy, release, holder = held(writer)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(writer.write, lambda db: remember(db.connection(), ["k-1"]))
        queued(writer, 1)
        second = pool.submit(writer.write, lambda db: remember(db.connection(), ["k-1"]))
        queued(writer, 2)
        release.set()
        answers = [first.result(timeout=10), second.result(timeout=10)]
    holder.join(5)
    assert answers == [{"k-1"}, set()]
    with reading(sessions) as db:
        assert db.scalar(select(func.count()).select_from(SeenSlackRequest)) == 1


def test_the_rows_a_batch_inserts_go_in_one_statement_per_table(
    sessions: sessionmaker[Session], writer: GroupCommit
) -> None:
    table = cast(Table, SeenSlackRequest.__table__)
    now = clock.now()
    statements: list[tuple[str, bool]] = []

    @event.listens_for(engine_of(sessions), "before_cursor_execute")
    def _seen(_c: object, _cur: object, sql: str, _p: object, _ctx: object, many: bool) -> None:
        if sql.startswith("INSERT") and "seen_slack_requests" in sql:
            statements.append((sql.split()[0], many))

    def five(db: Session) -> None:
        for i in range(5):
            insert_values(db, table, {"key": f"k{i}", "seen_at": now})

    writer.write(five)
    with reading(sessions) as db:
        keys = list(db.scalars(text("SELECT key FROM seen_slack_requests ORDER BY key")))
    assert keys == ["k0", "k1", "k2", "k3", "k4"]
    assert statements == [("INSERT", True)]


def test_the_write_runs_in_its_callers_context(writer: GroupCommit) -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    marker.set("the caller's")
    assert writer.write(lambda _db: marker.get()) == "the caller's"


def test_without_the_writer_thread_a_write_runs_in_the_caller(
    sessions: sessionmaker[Session],
) -> None:
    group = GroupCommit(sessions)  # not started: the CLI, the timers
    caller = threading.current_thread()
    assert group.write(lambda _db: threading.current_thread()) is caller
    group.start()
    assert group.write(lambda _db: threading.current_thread()) is not caller
    group.stop()
    assert group.write(lambda _db: threading.current_thread()) is caller
