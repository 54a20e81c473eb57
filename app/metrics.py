"""Prometheus metrics for GET /metrics.

Counts of requests and sessions by state are read from the database (so every replica reports
the same truth and nothing drifts after a restart), at most once per COUNTS_MAX_AGE in a
process: scrapes in between, from any thread, get the same figures and scan no table, so
whoever can reach /metrics cannot make the bot scan its tables at will. Latencies and failures
are observed where they happen, per process.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app import clock
from app.audit_sinks.status import AuditSinkLag
from app.audit_sinks.targets import SinkTarget
from app.db import reading
from app.models import AccessRequest, AccessSession, RequestState, SessionState

REGISTRY = CollectorRegistry()
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

GRANT_SECONDS = Histogram(
    "prod_access_grant_seconds", "Provider grant call duration", buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)  # fmt: skip
REVOKE_SECONDS = Histogram(
    "prod_access_revoke_seconds", "Provider revoke (and verification) duration",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
REVOKE_FAILURES = Counter(
    "prod_access_revoke_failures", "Revokes that failed (each is retried)", registry=REGISTRY
)
GRANT_FAILURES = Counter("prod_access_grant_failures", "Grants that failed", registry=REGISTRY)
EXPIRY_LAG_SECONDS = Histogram(
    "prod_access_expiry_lag_seconds", "From expires_at to the start of the revoke",
    buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300), registry=REGISTRY,
)  # fmt: skip
SLACK_API_ERRORS = Counter(
    "prod_access_slack_api_errors", "Slack notices that failed", ["notice"], registry=REGISTRY
)

# --- ticket trackers (app/trackers/): lookups and comments a tracker did not answer or refused ---
TRACKER_FAILURES = Counter(
    "prod_access_tracker_failures", "Tracker calls that failed (lookup, comment)",
    ["tracker", "call"], registry=REGISTRY,
)  # fmt: skip

# --- audit streaming: failures counted here, lag read from the database (app/audit_sinks/) ---
AUDIT_SINK_FAILURES = Counter(
    "prod_access_audit_sink_failures", "Audit batches a sink did not take (each is sent again)",
    ["sink"], registry=REGISTRY,
)  # fmt: skip


#: How long the counts by state are reused before a scrape reads them again (app.clock time).
COUNTS_MAX_AGE = timedelta(seconds=15)


@dataclass(frozen=True)
class _Counts:
    read_at: datetime
    requests: dict[Any, int]
    sessions: dict[Any, int]


# One entry per database (one in production; tests run several bots in one process), dropped
# with its sessionmaker. The lock makes concurrent scrapes of a stale entry read it once.
_cache: weakref.WeakKeyDictionary[sessionmaker[Session], _Counts] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _counts(db: sessionmaker[Session]) -> _Counts:
    with _cache_lock:
        now = clock.now()
        cached = _cache.get(db)
        # A clock that went back makes the entry stale too, rather than fresh for longer.
        if cached is None or not timedelta(0) <= now - cached.read_at < COUNTS_MAX_AGE:
            with reading(db) as session:
                cached = _Counts(
                    now,
                    _count_by(session, AccessRequest.state),
                    _count_by(session, AccessSession.state),
                )
            _cache[db] = cached
        return cached


class _StateCounts(Collector):
    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        requests = GaugeMetricFamily(
            "prod_access_requests", "Access requests by state", labels=["state"]
        )
        sessions = GaugeMetricFamily(
            "prod_access_sessions", "Access sessions by state", labels=["state"]
        )
        counts = _counts(self.db)
        for request_state in RequestState:
            requests.add_metric([request_state.value], counts.requests.get(request_state, 0))
        for session_state in SessionState:
            sessions.add_metric([session_state.value], counts.sessions.get(session_state, 0))
        yield requests
        yield sessions


def _count_by(db: Session, column: Any) -> dict[Any, int]:
    return {
        state: count for state, count in db.execute(select(column, func.count()).group_by(column))
    }


def render(db: sessionmaker[Session], audit_sinks: Sequence[SinkTarget] = ()) -> bytes:
    """The exposition text: this process's observations, then the counts by state and each
    audit sink's lag (both read at most every COUNTS_MAX_AGE)."""
    counts = CollectorRegistry()
    counts.register(_StateCounts(db))
    if audit_sinks:
        counts.register(AuditSinkLag(db, audit_sinks, COUNTS_MAX_AGE))
    return generate_latest(REGISTRY) + generate_latest(counts)
