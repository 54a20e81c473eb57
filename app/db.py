"""Engine, sessions and migrations.

SQLite (the default) is for one process: every transaction starts with BEGIN IMMEDIATE, so two
threads that both try to approve the same request run one after the other and the second sees
the first's decision. Threads queue for that on a lock in Python rather than in SQLite's busy
handler, which sleeps and retries (1, 2, 5, 10 … ms) and so made waits far longer than the
transactions they waited for. PostgreSQL gets the same guarantee from SELECT … FOR UPDATE.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_WAIT_SECONDS = 30


def normalize_url(url: str) -> str:
    """`postgresql://…` and `postgres://…` mean psycopg 3, the driver we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cursor.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives the process dying, not the machine losing
                # power mid-write; fsync per commit would make every ack wait on the disk.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if not writer.acquire(timeout=SQLITE_WAIT_SECONDS):
                raise TimeoutError(f"SQLite was busy for {SQLITE_WAIT_SECONDS} s")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                writer.release()
                raise
            conn.info["holds_writer"] = True

        def _sqlite_end(conn: Any) -> None:
            if conn.info.pop("holds_writer", False):
                writer.release()

        event.listen(engine, "commit", _sqlite_end)
        event.listen(engine, "rollback", _sqlite_end)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as db, db.begin():
        yield db


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Apply every Alembic migration (idempotent)."""
    command.upgrade(alembic_config(url), "head")
