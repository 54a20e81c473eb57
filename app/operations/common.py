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

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.context import AppContext
from app.db import advisory_lock, database_of, is_postgres, lock_key, reading
from app.models import AccessRequest, AccessSession
from app.operations import people
from app.operations.errors import NotAllowed, NotFound
from app.providers.base import AccessGrant, Provider
from app.text import short

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
    key = (session.system_id, session.identity or "", session.grant_name)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        engine = database_of(session)
        if engine is None or not is_postgres(engine):  # SQLite: one process, the thread lock
            yield None
            return
        with advisory_lock(engine, lock_key("holder", *key)) as connection:
            yield connection


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """Exponential backoff with ±20% jitter: base, 2·base, 4·base … up to cap."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    jitter = 0.8 + secrets.randbelow(401) / 1000
    return timedelta(seconds=delay * jitter)
