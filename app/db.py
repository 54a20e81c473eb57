"""Engine, sessions and migrations.

SQLite (the default) is for one process: every transaction starts with BEGIN IMMEDIATE, so two
threads that both try to approve the same request run one after the other and the second sees
the first's decision. Threads queue for that on a lock in Python rather than in SQLite's busy
handler, which sleeps and retries (1, 2, 5, 10 … ms) and so made waits far longer than the
transactions they waited for. PostgreSQL gets the same guarantee from SELECT … FOR UPDATE.

Several replicas share one PostgreSQL. What they must not do at the same time, and what is no
row to lock (a provider call for one access, a whole reconciliation run), is serialized with
advisory locks (`advisory_lock`): session-level locks on a connection of their own (from a pool
apart from the one requests use), which the server drops by itself when the process holding them
dies. Code that holds only a row reaches its database through `database_of(row)`: the session
factory notes on every row it loads the engine it came from.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapper, Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_WAIT_SECONDS = 30
READ_ONLY = "prod_access_read_only"  # execution option: a transaction that only reads
ONE_STATEMENT = "one statement"  # READ_ONLY's value for a read of one statement: no BEGIN at all


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
            read_only = conn.get_execution_options().get(READ_ONLY)
            if read_only:  # a WAL reader: sees the last commit, waits on no one
                if read_only != ONE_STATEMENT:  # one statement is a transaction of its own
                    conn.exec_driver_sql("BEGIN")
                return
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
    factory = sessionmaker(engine, expire_on_commit=False)

    @event.listens_for(factory, "loaded_as_persistent")
    def _remember_engine(_db: Session, row: object) -> None:
        inspect(row).info[_ENGINE] = engine

    return factory


_ENGINE = "prod_access.engine"


def engine_of(factory: sessionmaker[Session]) -> Engine:
    """The engine a session factory made by `make_sessionmaker` works on."""
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def database_of(row: object) -> Engine | None:
    """The engine a row was loaded through (None for one that was never loaded)."""
    engine = inspect(row).info.get(_ENGINE)
    return engine if isinstance(engine, Engine) else None


def is_postgres(bind: Engine | Connection | None) -> bool:
    return bind is not None and bind.dialect.name == "postgresql"


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for `parts`, the same in every process (unlike
    Python's salted `hash()`)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_lock_pools: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_lock_pools_guard = threading.Lock()
LOCK_POOL_SIZE = 16  # idle connections kept; more are opened when more locks are held at once


def _lock_pool(engine: Engine) -> Engine:
    """The connections advisory locks are held on. A lock is held for as long as a provider
    call takes (seconds, when a provider is slow), so these come from a pool of their own, which
    never makes anyone wait: a slow provider must not take the connections Slack's requests
    are answered with."""
    with _lock_pools_guard:
        pool = _lock_pools.get(engine)
        if pool is None:
            pool = create_engine(
                engine.url, pool_pre_ping=True, pool_size=LOCK_POOL_SIZE, max_overflow=-1
            )
            _lock_pools[engine] = pool
        return pool


@contextmanager
def advisory_lock(engine: Engine, key: int, *, wait: bool = True) -> Iterator[Connection | None]:
    """Hold PostgreSQL advisory lock `key` for the block, on a connection of its own (in
    autocommit, so no transaction stays open meanwhile), and yield that connection. With
    `wait=False` it yields None at once when someone else holds the lock. The lock is released
    after the block; if releasing fails the connection is thrown away, which releases it too."""
    with _lock_pool(engine).connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        if wait:
            connection.execute(select(func.pg_advisory_lock(key)))
        elif not connection.scalar(select(func.pg_try_advisory_lock(key))):
            yield None
            return
        try:
            yield connection
        finally:
            try:
                connection.execute(select(func.pg_advisory_unlock(key)))
            except Exception:
                log.warning("advisory_unlock_failed", key=key, exc_info=True)
                connection.invalidate()


@contextmanager
def advisory_locks(engine: Engine, keys: list[int]) -> Iterator[tuple[Connection, set[int]]]:
    """`advisory_lock` for many keys at once, without waiting: yields the connection (from the
    same pool) and the keys it got; keys someone else holds are left out. The caller may
    release some early (`pg_advisory_unlock` on the connection); whatever is still held is
    released after the block, and if that fails the connection is thrown away."""
    with _lock_pool(engine).connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        taken = set(
            connection.scalars(
                text(
                    "SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k"
                    " WHERE pg_try_advisory_lock(k)"
                ),
                {"keys": keys},
            )
        )
        try:
            yield connection, taken
        finally:
            try:
                connection.execute(select(func.pg_advisory_unlock_all()))
            except Exception:
                log.warning("advisory_unlock_failed", keys=len(keys), exc_info=True)
                connection.invalidate()


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as db, db.begin():
        yield db


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only look at the database. On SQLite it does not take the write lock (every
    `transaction` does), so reads never queue behind writers; writing in it is an error."""
    with factory() as db:  # closing ends the transaction; the rows read stay loaded
        db.connection(execution_options={READ_ONLY: True})
        yield db


def insert_row(db: Session, row: object) -> None:
    """Insert a new row in Core, now, on the transaction's connection, without the unit of
    work (a third of the CPU for a row that is written once, such as a new request). `row`
    stays transient: the caller keeps what it set; columns it did not set get their defaults."""
    table, columns = _columns_of(type(row))
    given = row.__dict__
    values = {}
    for key, default in columns:
        if key in given:
            values[key] = given[key]
        elif default is not _NO_DEFAULT:  # as the ORM would
            values[key] = default
            setattr(row, key, default)
    insert_values(db, table, values)


#: Session.info key: inserts that wait for the end of the group commit's batch (group_commit.py).
PENDING_INSERTS = "prod_access.pending_inserts"


def insert_values(db: Session, table: Table, values: dict[str, Any]) -> None:
    """INSERT one row of `table` in the session's transaction: now, or, inside
    `inserts_together`, with the block's other rows of that table in one executemany at its end."""
    pending: dict[Table, list[dict[str, Any]]] | None = db.info.get(PENDING_INSERTS)
    if pending is None:
        db.connection().execute(_insert_into(table), values)
    else:
        pending.setdefault(table, []).append(values)


@contextmanager
def inserts_together(db: Session) -> Iterator[None]:
    """The rows `insert_values` (`insert_row`, `audit.record`) is given in the block, in the
    caller's transaction, are inserted at its end, one executemany per table, rather than one
    INSERT each (the expiry sweep records hundreds of events at a time; a group commit's batch
    many requests). Nothing in the block may read back a row it inserted. Inside another such
    block, the outer one inserts them."""
    if db.info.get(PENDING_INSERTS) is not None:
        yield
        return
    db.info[PENDING_INSERTS] = {}
    try:
        yield
        insert_pending(db)
    finally:
        db.info.pop(PENDING_INSERTS, None)


def insert_pending(db: Session) -> None:
    """Run the inserts a batch deferred, a table at a time, in the order each table was first
    written (a request before the audit event that names it)."""
    pending: dict[Table, list[dict[str, Any]]] = db.info.get(PENDING_INSERTS) or {}
    for table, rows in pending.items():
        db.connection().execute(_insert_into(table), rows)
    pending.clear()


_NO_DEFAULT = object()


_COLUMNS: dict[type, tuple[Table, tuple[tuple[str, Any], ...]]] = {}


def _columns_of(model: type) -> tuple[Table, tuple[tuple[str, Any], ...]]:
    """A model's table and, per column, its key and scalar default (_NO_DEFAULT if none)."""
    known = _COLUMNS.get(model)
    if known is None:
        known = _COLUMNS[model] = _read_columns(model)
    return known


def _read_columns(model: type) -> tuple[Table, tuple[tuple[str, Any], ...]]:
    mapper: Mapper[Any] = inspect(model)
    columns = []
    for column in mapper.columns:
        default = column.default
        scalar = default is not None and default.is_scalar
        columns.append((column.key, getattr(default, "arg", None) if scalar else _NO_DEFAULT))
    return cast(Table, mapper.local_table), tuple(columns)


@functools.cache
def _insert_into(table: Table) -> Insert:
    return table.insert()  # one statement object per table: SQLAlchemy caches its compiled form


@contextmanager
def peeking(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """`reading` without the ORM, for one hot query that returns plain values: a read-only Core
    connection, on SQLite without BEGIN (one statement reads one snapshot by itself). Each
    statement run on it sees the last commit; use `reading` for several that must agree."""
    with engine_of(factory).connect().execution_options(**{READ_ONLY: ONE_STATEMENT}) as connection:
        yield connection


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # Alembic is imported by what migrates, not by every command

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest migration's revision, read from the migration scripts once per process."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def upgrade(url: str) -> None:
    """Apply every Alembic migration (idempotent). A database already at the newest revision is
    left as it is without running Alembic's environment, which loads every migration script
    each time (most of a bot's start-up time, and of every test that starts one)."""
    from alembic import command

    if _revisions_of(url) == [head_revision()]:
        return
    command.upgrade(alembic_config(url), "head")


def _revisions_of(url: str) -> list[str]:
    """The revisions the database is at (none for a new or empty one)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return []
            return list(connection.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


class DatabaseNotReady(Exception):
    """The database the settings name is not set up (not created or not migrated)."""


def require_set_up(url: str) -> None:
    """DatabaseNotReady unless the database exists and has been migrated; a SQLite file that
    does not exist is not created by asking (the commands that only read must not leave an
    empty database behind)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).exists():
            raise DatabaseNotReady(f"there is no database at {path or url} yet")
    engine = create_engine(normalize_url(url))
    try:
        if not inspect(engine).has_table("alembic_version"):
            raise DatabaseNotReady("the database has no tables yet")
    finally:
        engine.dispose()
