"""How far behind each audit sink is, for `/metrics` and `prod-access check`.

Rules it relies on:
- Lag is read from the database, so every replica reports the same figures: events behind =
  the chain head's seq - the sink's `delivered_seq`; seconds behind = now - the `at` of the
  oldest event not delivered yet (0 when none waits). Each is an indexed lookup.
- A scrape reuses figures younger than the metrics' max age (as the counts by state do), so
  whoever reaches /metrics cannot make the bot read its tables at will.
- Only the shown form of a sink's URL is a label or a line (never a token, query or password).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app import clock
from app.audit import HEAD_ID
from app.audit_sinks.sinks import SinkError, build_sink
from app.audit_sinks.targets import SinkTarget, configured
from app.config import Settings
from app.db import reading
from app.models import AuditChainHead, AuditEvent
from app.models_features import AuditSinkCursor
from app.text import short


@dataclass(frozen=True)
class SinkStatus:
    target: SinkTarget
    head_seq: int
    delivered_seq: int
    oldest_waiting_at: datetime | None
    attempts: int = 0
    last_error: str | None = None

    @property
    def behind(self) -> int:
        return max(0, self.head_seq - self.delivered_seq)

    def seconds_behind(self, now: datetime) -> float:
        if self.oldest_waiting_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_waiting_at).total_seconds())

    def progress(self) -> str:
        if not self.behind:
            return f"up to date (seq {self.delivered_seq})"
        return (
            f"behind by {self.behind} event(s) "
            f"(delivered through seq {self.delivered_seq} of {self.head_seq})"
        )


def read_status(db: Session, targets: Sequence[SinkTarget]) -> list[SinkStatus]:
    """Each sink's cursor against the chain head (a sink never run yet stands at 0)."""
    head = db.scalar(select(AuditChainHead.seq).where(AuditChainHead.id == HEAD_ID)) or 0
    cursors = {
        row.sink_id: row
        for row in db.scalars(
            select(AuditSinkCursor).where(AuditSinkCursor.sink_id.in_([t.id for t in targets]))
        )
    }
    statuses = []
    for target in targets:
        row = cursors.get(target.id)
        delivered = row.delivered_seq if row is not None else 0
        oldest = (
            db.scalar(select(AuditEvent.at).where(AuditEvent.seq == delivered + 1))
            if head > delivered
            else None
        )
        statuses.append(
            SinkStatus(
                target,
                head,
                delivered,
                oldest,
                row.attempts if row is not None else 0,
                row.last_error if row is not None else None,
            )
        )
    return statuses


# --- /metrics --------------------------------------------------------------------------------

_cache: weakref.WeakKeyDictionary[
    sessionmaker[Session], tuple[datetime, tuple[str, ...], list[SinkStatus]]
] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _cached(
    db: sessionmaker[Session], targets: Sequence[SinkTarget], max_age: timedelta
) -> list[SinkStatus]:
    ids = tuple(target.id for target in targets)
    with _cache_lock:
        now = clock.now()
        cached = _cache.get(db)
        if cached is None or cached[1] != ids or not timedelta(0) <= now - cached[0] < max_age:
            with reading(db) as session:
                cached = (now, ids, read_status(session, targets))
            _cache[db] = cached
        return cached[2]


class AuditSinkLag(Collector):
    """prod_access_audit_sink_lag_events and _lag_seconds, one sample per sink."""

    def __init__(
        self, db: sessionmaker[Session], targets: Sequence[SinkTarget], max_age: timedelta
    ) -> None:
        self.db, self.targets, self.max_age = db, targets, max_age

    def collect(self) -> Iterator[GaugeMetricFamily]:
        events = GaugeMetricFamily(
            "prod_access_audit_sink_lag_events",
            "Audit events not yet delivered to the sink (head seq - its cursor)",
            labels=["sink"],
        )
        seconds = GaugeMetricFamily(
            "prod_access_audit_sink_lag_seconds",
            "Seconds since the oldest audit event the sink has not had yet (0: none waits)",
            labels=["sink"],
        )
        now = clock.now()
        for status in _cached(self.db, self.targets, self.max_age):
            events.add_metric([status.target.shown], status.behind)
            seconds.add_metric([status.target.shown], status.seconds_behind(now))
        yield events
        yield seconds


# --- prod-access check -----------------------------------------------------------------------


def check_rows(settings: Settings) -> list[tuple[str, bool, str]]:
    """One (check, ok, detail) per sink: reachable or not, how far behind, the last error."""
    targets = configured(settings)
    if not targets:
        return []
    statuses, unread = _statuses(settings, targets)
    rows = []
    for target in targets:
        try:
            ok, parts = True, [build_sink(target, settings).probe()]
        except SinkError as exc:
            ok, parts = False, [str(exc)]
        status = statuses.get(target.id)
        if status is None:
            parts.append(unread)
        else:
            if status.last_error:
                ok = False
                parts.append(f"failing ({status.attempts} attempt(s)): {status.last_error}")
            parts.append(status.progress())
        rows.append((f"audit sink {target.label}", ok, "; ".join(parts)))
    return rows


def _statuses(
    settings: Settings, targets: Sequence[SinkTarget]
) -> tuple[dict[str, SinkStatus], str]:
    """The sinks' status from the database, or why it could not be read (nothing is created)."""
    from app import db as database

    try:
        database.require_set_up(settings.database_url)
        engine = database.make_engine(settings.database_url)
        try:
            with reading(database.make_sessionmaker(engine)) as session:
                found = read_status(session, targets)
        finally:
            engine.dispose()
    except database.DatabaseNotReady as exc:
        return {}, f"nothing delivered yet: {exc}"
    except SQLAlchemyError as exc:
        return {}, f"database unreadable: {short(exc, 160)}"
    return {status.target.id: status for status in found}, ""
