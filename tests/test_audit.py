"""The audit trail an auditor accepts: one hash chain, append-only, verifiable, exportable at
scale, and safe with several writers at once."""

from __future__ import annotations

import csv
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from sqlalchemy import insert, update

from app import audit, clock
from app.audit import GENESIS, AppendOnlyError, chain_hash
from app.db import make_engine, make_sessionmaker, transaction, upgrade
from app.models import AuditChainHead, AuditEvent, SessionState
from tests.conftest import BOB, LEAD1, BotHarness, empty_database, run_cli_here

ROOT = Path(__file__).resolve().parents[1]


def _full_story(bot: BotHarness) -> str:
    request_id = bot.quick_request("orders-api write 30m PAY-184 restart payment worker", BOB)
    bot.send.click("approve_request", request_id, LEAD1)
    session = bot.wait_session(request_id, SessionState.active)
    clock.travel(timedelta(minutes=31))
    bot.sweep()
    bot.wait_session(request_id, SessionState.ended)
    assert session.id
    return request_id


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


def test_chain_verifies_on_a_real_log(bot: BotHarness, tmp_path: Path) -> None:
    _full_story(bot)
    _full_story(bot)
    with transaction(bot.ctx.db) as db:
        verdict = audit.verify(db)
        rows = list(audit.events(db))
    assert verdict.ok and verdict.count == len(rows) == 12
    assert [r.seq for r in rows] == list(range(1, 13))
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    url = bot.ctx.settings.database_url
    result = run_cli_here(tmp_path, _env(url), "audit", "verify")
    assert result.returncode == 0
    assert result.stdout.strip() == "OK: 12 audit events, chain intact"


def _sqlite_bot_db(bot: BotHarness) -> str:
    """The bot's SQLite file (edited directly here; PostgreSQL refuses edits, tested below)."""
    return bot.ctx.settings.database_url.removeprefix("sqlite:///")


def test_editing_one_row_by_sql_makes_verify_fail_and_name_that_event(
    sqlite_bot: BotHarness, tmp_path: Path
) -> None:
    bot = sqlite_bot
    path = _sqlite_bot_db(bot)
    _full_story(bot)
    with sqlite3.connect(path) as conn:
        event_id = conn.execute("SELECT id FROM audit_events WHERE event='approved'").fetchone()[0]
        conn.execute("UPDATE audit_events SET actor='U0MALLORY' WHERE id=?", (event_id,))
    result = run_cli_here(tmp_path, _env(bot.ctx.settings.database_url), "audit", "verify")
    assert result.returncode == 1
    assert result.stdout.startswith(f"BROKEN at event {event_id} (seq 2): its content does not")
    assert '"actor":"U0MALLORY"' in result.stdout  # what it says now, for the investigator


def test_deleted_events_are_found_at_the_end_and_in_the_middle(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    path = _sqlite_bot_db(bot)
    _full_story(bot)  # 6 events
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 6")
    with transaction(bot.ctx.db) as db:
        verdict = audit.verify(db)
    assert not verdict.ok and verdict.seq == 5
    assert "its head says seq 6: the last 1 event(s) were deleted" in verdict.problem
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 3")
    with transaction(bot.ctx.db) as db:
        verdict = audit.verify(db)
    assert not verdict.ok and verdict.seq == 4
    assert "expected seq 3: 1 event(s) before it are missing (deleted)" in verdict.problem


def test_the_application_cannot_change_or_remove_an_event(bot: BotHarness) -> None:
    _full_story(bot)
    with pytest.raises(AppendOnlyError), transaction(bot.ctx.db) as db:
        first = db.get(AuditEvent, 1)
        assert first is not None
        first.actor = "someone-else"
    with pytest.raises(AppendOnlyError), transaction(bot.ctx.db) as db:
        db.delete(db.get(AuditEvent, 2))
    with pytest.raises(AppendOnlyError), transaction(bot.ctx.db) as db:
        db.execute(update(AuditEvent).values(actor="x"))
    with transaction(bot.ctx.db) as db:
        assert audit.verify(db).ok


def test_postgres_refuses_update_delete_and_truncate_of_events(pg_database: str) -> None:
    upgrade(pg_database)
    sessions = make_sessionmaker(make_engine(pg_database))
    with transaction(sessions) as db:
        audit.record(db, "requested", BOB)
    dsn = pg_database.replace("postgresql+psycopg://", "postgresql://")
    for statement in (
        "UPDATE audit_events SET actor = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error) as err:
            conn.execute(statement)
        assert "audit_events is append-only" in str(err.value)
    with transaction(sessions) as db:
        assert audit.verify(db).ok


APPENDER = textwrap.dedent(
    """
    import sys
    from app import audit
    from app.db import make_engine, make_sessionmaker, transaction
    sessions = make_sessionmaker(make_engine(sys.argv[1]))
    for i in range(int(sys.argv[3])):
        with transaction(sessions) as db:
            audit.record(db, "requested", sys.argv[2], n=i)
    """
)


def _appenders(url: str, count: int) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, url, who, str(count)], cwd=ROOT)
        for who in ("U0ONE", "U0TWO")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_appends_from_two_processes_keep_one_chain(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = empty_database(backend, tmp_path, request)
    upgrade(url)
    _appenders(url, 300)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as db:
        verdict = audit.verify(db)
        actors = [e.actor for e in audit.events(db)]
    assert verdict.ok and verdict.count == 600
    assert actors.count("U0ONE") == actors.count("U0TWO") == 300
    assert 0 < actors.index("U0TWO") < 599 or 0 < actors.index("U0ONE") < 599  # interleaved


def _seed(url: str, count: int) -> None:
    """`count` chained events, written in bulk (the chain as audit.record would make it)."""
    upgrade(url)
    engine = make_engine(url)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    previous, rows = GENESIS, []
    columns = [c for c in AuditEvent.__table__.columns if c.name != "id"]
    for seq in range(1, count + 1):
        # the attributes chain_hash reads, without the ORM's per-attribute bookkeeping (which
        # took most of the seeding time); unset columns are None, as on an unsaved AuditEvent
        row = SimpleNamespace(**dict.fromkeys(c.key for c in columns))
        vars(row).update(
            seq=seq,
            at=start + timedelta(seconds=seq * 60),
            event="requested" if seq % 2 else "approved",
            actor=f"U0USER{seq % 50}",
            request_id=f"R-{seq:08d}",
            system_id="orders-api" if seq % 3 else "checkout-db",
            role_id="write",
            ticket=f"PAY-{seq}",
            detail_json=json.dumps({"reason": f"reason number {seq} " + "x" * 80}),
        )
        row.prev_hash = previous
        row.hash = previous = chain_hash(previous, row)  # type: ignore[arg-type]
        rows.append({c.name: getattr(row, c.key) for c in columns})
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent), rows)
        conn.execute(update(AuditChainHead).values(seq=count, hash=previous))
    engine.dispose()


def _export_peak(tmp_path: Path, count: int) -> tuple[int, int, list[list[str]]]:
    """Export `count` seeded events as CSV through the real command, under tracemalloc: the
    peak traced memory, the file's size, and its rows (header first)."""
    from app.cli import main

    url = f"sqlite:///{tmp_path / f'trail-{count}.db'}"
    _seed(url, count)
    out = tmp_path / f"audit-{count}.csv"
    args = ["audit", "export", "--since", "2026-09-01", "--format", "csv", "-o", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        tracemalloc.start()
        try:
            assert main(args) == 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    with out.open() as handle:
        return peak, out.stat().st_size, list(csv.reader(handle))


def test_export_streams_in_memory_that_does_not_grow_with_the_trail(tmp_path: Path) -> None:
    """Four times the events, the same memory: the export streams (bench/audit_export.py
    prints the figures for 100,000 events)."""
    small_peak, _, _ = _export_peak(tmp_path, 5_000)
    peak, size, rows = _export_peak(tmp_path, 20_000)
    assert rows[0] == list(audit.COLUMNS)
    assert len(rows) == 20_001 and rows[1][0] == "1" and rows[-1][0] == "20000"
    assert rows[1][1] == "2026-09-01T00:01:00.000000Z"
    assert peak < small_peak * 1.5 + 1e6, f"{small_peak / 1e6:.1f} MB, then {peak / 1e6:.1f} MB"
    assert peak < size, "the export held a whole file's worth of memory"


def test_export_filters_and_jsonl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    _seed(url, 300)
    env = _env(url)
    result = run_cli_here(
        tmp_path, env, "audit", "export", "--since", "2026-09-01T02:00:00Z",
        "--until", "2026-09-01T04:00:00Z", "--system", "checkout-db", "--format", "jsonl",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # minutes 120..239 → seq 120..239, every third one is checkout-db
    assert [r["seq"] for r in lines] == [s for s in range(120, 240) if s % 3 == 0]
    assert list(lines[0]) == list(audit.COLUMNS)
    user = run_cli_here(tmp_path, env, "audit", "export", "--user", "U0USER7")
    assert {json.loads(x)["actor"] for x in user.stdout.splitlines()} == {"U0USER7"}
    bad = run_cli_here(tmp_path, env, "audit", "export", "--since", "last tuesday")
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_migration_chains_events_written_before_the_chain_existed(tmp_path: Path) -> None:
    from alembic import command

    from app.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        for i in range(5):
            conn.execute(
                "INSERT INTO audit_events (at, event, actor, detail_json) VALUES (?, ?, ?, ?)",
                (f"2026-11-0{i + 1} 10:00:00.000000", "requested", f"U{i}", "{}"),
            )
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with transaction(sessions) as db:
        assert audit.verify(db).ok and audit.verify(db).count == 5
        audit.record(db, "approved", "U9")
    with sessions() as db:
        assert audit.verify(db).count == 6
