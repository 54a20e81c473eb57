"""Audit streaming in the running bot and at scale: the bot's own timer streams a real access
as it happens; two replicas on one real PostgreSQL deliver each event once, in order, one at a
time (a replica killed mid-batch costs one resent batch, de-duplicable by seq);
a long trail streams in memory bounded by a batch, not by the trail (100,000 events:
bench/audit_sinks.py).
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import audit, clock
from app.audit_sinks import deliver
from app.audit_sinks.deliver import Delivery, deliver_to_all
from app.db import make_engine, make_sessionmaker, reading, transaction, upgrade
from app.jobs.scheduler import start_scheduler
from tests.conftest import BOB, LEAD1, BotHarness, eventually, make_settings, write_policy
from tests.fakes.audit_trail import seed_events
from tests.fakes.hec_receiver import HecReceiver
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.test_audit_sinks import HEC_TOKEN, assert_rechains, recorded, sink_settings

WRITES, EVENTS_PER_WRITE = 60, 5


@pytest.fixture
def two_replicas(pg_database: str) -> Iterator[tuple[str, list[sessionmaker[Session]]]]:
    """Two processes' worth of database access: an engine (and pool) each, one PostgreSQL."""
    upgrade(pg_database)
    engines: list[Engine] = [make_engine(pg_database) for _ in range(2)]
    yield pg_database, [make_sessionmaker(engine) for engine in engines]
    for engine in engines:
        engine.dispose()


def test_two_replicas_deliver_each_event_once_in_order_and_one_at_a_time(
    two_replicas: tuple[str, list[sessionmaker[Session]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, replicas = two_replicas
    with HecReceiver(HEC_TOKEN, pause=0.01) as hec:
        settings = sink_settings(url, hec.url)
        writing_done = threading.Event()
        runs: list[list[Delivery]] = [[], []]

        def write() -> None:  # the bot at work: events committed while the replicas stream
            for n in range(WRITES):
                with transaction(replicas[n % 2]) as session:
                    for _ in range(EVENTS_PER_WRITE):
                        audit.record(session, "requested", "U0BOB", write=n)
            writing_done.set()

        deadline = time.monotonic() + 30

        def replica(index: int) -> None:  # each replica's timer, ticking fast
            while time.monotonic() < deadline:
                runs[index].extend(deliver_to_all(settings, replicas[index]))
                if writing_done.is_set() and len(hec.objects) >= WRITES * EVENTS_PER_WRITE:
                    return
                time.sleep(0.002)

        threads = [threading.Thread(target=write)]
        threads += [threading.Thread(target=replica, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        total = WRITES * EVENTS_PER_WRITE
        assert [e["seq"] for e in hec.events] == list(range(1, total + 1))  # once, in order
        assert hec.max_in_flight == 1  # never two senders at once
        stood_by = [r.skipped for rs in runs for r in rs if r.skipped]
        assert any("another process" in why for why in stood_by), "no contention was exercised"
        assert all(r.error is None for rs in runs for r in rs)

        # replica 0 dies after HEC took a batch, before its cursor moved; replica 1 stands by
        # while the lease lasts, then sends that batch again: the only duplicates, same seqs
        with transaction(replicas[0]) as session:
            for _ in range(3):
                audit.record(session, "revoked", "prod-access")
        monkeypatch.setattr(deliver, "_advance", _killed)
        with pytest.raises(SystemExit):
            deliver_to_all(settings, replicas[0])
        monkeypatch.undo()
        assert deliver_to_all(settings, replicas[1])[0].skipped == "delivered by another process"
        clock.travel(deliver.LEASE)
        assert deliver_to_all(settings, replicas[1])[0].events == 3
        seqs = [e["seq"] for e in hec.events]
        assert seqs == [*range(1, total + 4), total + 1, total + 2, total + 3]
        assert [e for e in hec.events if e["seq"] > total][:3] == recorded(replicas[1])[total:]
        assert_rechains(hec.events[: total + 3])


def _killed(*_: object) -> None:
    raise SystemExit("killed between the send and the commit")


def test_a_long_trail_streams_to_a_file_in_memory_bounded_by_a_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'long.db'}"
    upgrade(url)
    engine = make_engine(url)
    count = 10_000
    seed_events(engine, count)
    db = make_sessionmaker(engine)
    with reading(db) as session:
        assert audit.verify(session).ok
    path = tmp_path / "audit.jsonl"
    settings = sink_settings(url, path.as_uri())
    tracemalloc.start()
    started = time.perf_counter()
    try:
        [delivery] = deliver_to_all(settings, db)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    engine.dispose()
    size = path.stat().st_size
    print(
        f"\nfile sink: {count:,} events, {size / 1e6:.1f} MB, {elapsed:.1f} s, "
        f"peak traced memory {peak / 1e6:.1f} MB"
    )
    assert (delivery.events, delivery.through) == (count, count)
    # all 10,000 held at once would take well over 20 MB; a batch of 500 takes about 2.5
    assert peak < 5e6, f"peak {peak / 1e6:.1f} MB: memory grows with the trail"
    assert peak < size
    with path.open(encoding="utf-8") as lines:
        assert sum(1 for _ in lines) == count


def test_the_bots_timer_streams_a_real_access_to_splunk_as_it_happens(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    with HecReceiver(HEC_TOKEN) as hec:
        settings = make_settings(tmp_path, slack, policy).model_copy(
            update={
                "audit_sinks": hec.url,
                "audit_sink_token": SecretStr(HEC_TOKEN),
                "audit_sink_interval_seconds": 0.2,
            }
        )
        bot = BotHarness(settings, slack)
        scheduler = start_scheduler(bot.ctx)
        try:
            bot.granted("orders-api write 1h PAY-2 backfill", BOB, LEAD1)
            events = eventually(
                lambda: [e["event"] for e in hec.events if e["event"] == "granted"],
                what="the granted event at HEC",
            )
            assert events == ["granted"]
            assert hec.events == recorded(bot.ctx.db)[: len(hec.events)]
            assert [e["event"] for e in hec.events][:2] == ["requested", "approved"]
        finally:
            scheduler.shutdown(wait=True)
            bot.stop()
