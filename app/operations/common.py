"""Pieces the operations share: ids, row loading with a lock, the provider's view of a session,
and a per-access lock so a grant and a revoke of the same role for the same person never cross.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.context import AppContext
from app.db import advisory_lock, advisory_locks, database_of, is_postgres, lock_key, reading
from app.models import AccessRequest, AccessSession
from app.operations import people
from app.operations.errors import NotAllowed, NotFound
from app.providers.base import AccessGrant, Provider
from app.text import short

log = structlog.get_logger(__name__)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
#: How long a `granting`/`revoking` intent may stand before a sweep takes it over (a crash).
INTENT_LEASE = timedelta(minutes=2)

Row = TypeVar("Row", AccessRequest, AccessSession)


def new_id(prefix: str) -> str:
    """Short ids people can read out loud: R-7K3Q9X2M (request), S-… (session)."""
    # 40 random bits, 5 to a character: one call to the OS (secrets.choice is one per character)
    bits = int.from_bytes(secrets.token_bytes(5), "big")
    return prefix + "-" + "".join(_ALPHABET[(bits >> shift) & 31] for shift in range(35, -5, -5))


def load_locked(db: Session, model: type[Row], row_id: str) -> Row:
    """The row, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite locks the db)."""
    return _found(
        model, row_id, db.get(model, row_id, with_for_update=True, populate_existing=True)
    )


def read_row(ctx: AppContext, model: type[Row], row_id: str, *options: Any) -> Row:
    """The row as it is now, for a check or a message (no lock, no transaction held after);
    `options` load more with it (e.g. queries.with_approvals)."""
    with reading(ctx.db) as db:
        return _found(model, row_id, db.get(model, row_id, options=list(options)))


def _found(model: type[Row], row_id: str, row: Row | None) -> Row:
    if row is None:
        kind = "request" if model is AccessRequest else "session"
        raise NotFound(f"No {kind} {row_id} exists.")
    return row


def access_of(session: AccessSession) -> AccessGrant:
    request = session.request
    return AccessGrant(
        session_id=session.id,
        request_id=request.id,
        system=session.system_id,
        role=session.role_id,
        grant=session.grant_name,
        slack_id=session.requester_id,
        email=session.email,
        identity=session.identity or "",
        ticket=request.ticket,
        reason=request.reason,
        expires_at=session.expires_at,
    )


def provider_note(note: str | None) -> dict[str, Any]:
    """Audit detail for what a provider said about a change it made (e.g. a command's output)."""
    return {"provider_note": short(note, 1000)} if note else {}


def check_requester_or_approver(
    ctx: AppContext, session: AccessSession, user_id: str, doing: str
) -> None:
    """Ending or retrying a session is for the person who has it and the system's approvers."""
    system = ctx.policy.system(session.system_id)
    if user_id == session.requester_id or (
        system is not None and people.may_approve(ctx, system, session.role_id, user_id)
    ):
        return
    raise NotAllowed(f"Only the requester or an approver can {doing}.")


def provider_for(ctx: AppContext, system_id: str) -> Provider:
    provider = ctx.providers.get(system_id)
    if provider is None:
        raise NotFound(f"System {system_id} is no longer in the policy.")
    return provider


_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def holder_lock(session: AccessSession) -> Iterator[Connection | None]:
    """Serialize provider calls for one (system, identity, grant): a thread lock within this
    process and, on PostgreSQL, an advisory lock in the session's database, so that replicas
    queue too. Yields the connection that holds the advisory lock (None on SQLite, which has
    one process): a caller that reads the database meanwhile can use it rather than a second
    connection."""
    key = _holder_key(session)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        engine = database_of(session)
        if engine is None or not is_postgres(engine):  # SQLite: one process, the thread lock
            yield None
            return
        with advisory_lock(engine, lock_key("holder", *key)) as connection:
            yield connection


class HeldAccess:
    """What `holder_locks` took: `taken`, the sessions whose access this worker now holds;
    `left`, those whose access someone else holds (or an earlier session of the batch has the
    same access), for `holder_lock`, which waits; `connection`, the one holding the advisory
    locks (None on SQLite). `release` lets one session's access go, from any thread."""

    def __init__(self) -> None:
        self.taken: list[AccessSession] = []
        self.left: list[AccessSession] = []
        self.connection: Connection | None = None
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # also serializes the use of `connection`

    def release(self, session: AccessSession) -> None:
        """Let the session's access go now (someone may be waiting for it): on PostgreSQL its
        advisory lock too, on the batch's connection. If that fails, the lock is let go with
        the others at the end of the batch."""
        with self._guard:
            lock = self._thread_locks.pop(session.id, None)
            if lock is not None and self.connection is not None:
                key = lock_key("holder", *_holder_key(session))
                try:
                    self.connection.execute(select(func.pg_advisory_unlock(key)))
                except SQLAlchemyError:
                    log.warning("advisory_unlock_failed", key=key, exc_info=True)
        if lock is not None:
            lock.release()

    def _release_all(self) -> None:
        with self._guard:
            locks, self._thread_locks = list(self._thread_locks.values()), {}
        for lock in locks:
            lock.release()


@contextmanager
def holder_locks(sessions: list[AccessSession]) -> Iterator[HeldAccess]:
    """`holder_lock` for a batch of sessions, taken at once and without waiting: the expiry
    sweep's burst takes the thread locks, and on PostgreSQL the advisory locks in one statement
    on one connection, rather than a connection per provider call in flight. What is still
    held after the block is released then."""
    held = HeldAccess()
    seen: set[tuple[str, str, str]] = set()
    for session in sessions:
        key = _holder_key(session)
        if key in seen or session.identity is None:
            held.left.append(session)
            continue
        seen.add(key)
        with _locks_guard:
            lock = _locks.setdefault(key, threading.Lock())
        if lock.acquire(blocking=False):
            held.taken.append(session)
            held._thread_locks[session.id] = lock
        else:
            held.left.append(session)
    engine = database_of(held.taken[0]) if held.taken else None
    try:
        if engine is None or not is_postgres(engine):
            yield held
            return
        keys = {lock_key("holder", *_holder_key(s)): s for s in held.taken}
        with advisory_locks(engine, list(keys)) as (connection, got):
            for number, session in keys.items():
                if number not in got:  # another replica is calling the provider for it
                    held._thread_locks.pop(session.id).release()
                    held.taken.remove(session)
                    held.left.append(session)
            held.connection = connection
            yield held
    finally:
        held._release_all()


def _holder_key(session: AccessSession) -> tuple[str, str, str]:
    return (session.system_id, session.identity or "", session.grant_name)


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """Exponential backoff with ±20% jitter: base, 2·base, 4·base … up to cap."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    jitter = 0.8 + secrets.randbelow(401) / 1000
    return timedelta(seconds=delay * jitter)
