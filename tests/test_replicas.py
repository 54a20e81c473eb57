"""Two replicas of the bot on one real PostgreSQL: nothing is granted twice, revoked twice, or
missed, whatever dies when.

Each replica is the real bot (`BotHarness`: its own engine and connection pool, its own HTTP
endpoint) and both share one database, the fake Slack and the webhook target, which counts the
Idempotency-Key of every call. Being one process, the replicas share the in-process holder
lock; what a second *process* would hold is played by a raw connection taking the same
PostgreSQL advisory lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.sql import Select

from app import audit, clock
from app import db as database
from app.db import engine_of, lock_key, transaction
from app.jobs.expire import (
    DUE,
    claim_due_sessions,
    due_sessions,
    next_due,
    next_due_at,
    resume_interrupted,
)
from app.jobs.reconcile import reconcile
from app.models import (
    AccessRequest,
    AccessSession,
    AuditEvent,
    CloseoutState,
    EndReason,
    SessionState,
)
from app.operations.end_session import end_session
from tests.blocks_helpers import offers
from tests.conftest import (
    BOB,
    LEAD1,
    SIGNING_SECRET,
    BotHarness,
    eventually,
    make_settings,
    write_policy,
)
from tests.fakes.serve import free_port
from tests.fakes.sessions import seed_sessions
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import Answer, SlackSender, sign
from tests.fakes.webhook_receiver import WebhookReceiver

T = TypeVar("T")
GRANT = "orders-admin"


@pytest.fixture
def replicas(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, pg_database: str
) -> Iterator[tuple[BotHarness, BotHarness]]:
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    one = BotHarness(make_settings(tmp_path, slack, policy, pg_database), slack)
    two = BotHarness(make_settings(tmp_path, slack, policy, pg_database), slack)
    assert engine_of(one.ctx.db) is not engine_of(two.ctx.db)  # two pools, one database
    yield one, two
    one.stop()
    two.stop()


def _seed(bot: BotHarness, count: int, **columns: Any) -> list[str]:
    return seed_sessions(bot.ctx.db, count, **columns)


def _at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released together; their results in order (errors re-raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # handed to the test thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _keys(webhook: WebhookReceiver, action: str) -> Counter[str]:
    """How often each Idempotency-Key of `action` reached the webhook target."""
    return Counter(
        r.headers["idempotency-key"] for r in webhook.requests if r.body.get("action") == action
    )


def _states(bot: BotHarness, ids: list[str]) -> Counter[str]:
    with transaction(bot.ctx.db) as db:
        return Counter(
            str(state)
            for state in db.scalars(select(AccessSession.state).where(AccessSession.id.in_(ids)))
        )


def _event_counts(bot: BotHarness, event: str) -> Counter[str | None]:
    with transaction(bot.ctx.db) as db:
        return Counter(
            db.scalars(select(AuditEvent.session_id).where(AuditEvent.event == event)).all()
        )


def _held_elsewhere(dsn: str, key: int) -> psycopg.Connection[Any]:
    """A connection of 'another replica' holding advisory lock `key` until it is closed."""
    connection = psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://"))
    connection.autocommit = True
    connection.execute("SELECT pg_advisory_lock(%s)", (key,))
    return connection


# --- the expiry sweep -------------------------------------------------------------------------


def test_two_replicas_sweeping_at_once_revoke_every_session_exactly_once(
    replicas: tuple[BotHarness, BotHarness], webhook: WebhookReceiver
) -> None:
    one, two = replicas
    ids = _seed(one, 200, expires_at=clock.now() - timedelta(seconds=1))
    webhook.delay(0.01, times=800)  # a provider that takes a moment, so the sweeps overlap

    first, second = _at_once(one.sweep, two.sweep)

    assert _keys(webhook, "revoke") == {f"{sid}:revoke": 1 for sid in ids}
    assert _states(one, ids) == {"ended": 200}
    assert first.expired and second.expired  # the burst was shared …
    assert not set(first.expired) & set(second.expired)  # … and nothing claimed twice
    assert sorted(first.expired + second.expired) == sorted(ids)
    assert _event_counts(one, "expired") == {sid: 1 for sid in ids}
    assert _event_counts(one, "revoked") == {sid: 1 for sid in ids}
    with transaction(one.ctx.db) as db:
        assert audit.verify(db).ok  # both replicas extended one chain


def test_a_replica_that_died_mid_call_is_finished_by_the_other_and_live_claims_are_left_alone(
    replicas: tuple[BotHarness, BotHarness], webhook: WebhookReceiver
) -> None:
    one, two = replicas
    lapsed = clock.now() - timedelta(seconds=1)
    dead_revoke = _seed(
        one,
        1,
        state=SessionState.revoking,
        next_attempt_at=lapsed,
        end_reason=EndReason.expired,
        ended_by=audit.SYSTEM_ACTOR,
    )
    dead_grant = _seed(one, 1, state=SessionState.granting, next_attempt_at=lapsed)
    live = dict(next_attempt_at=clock.now() + timedelta(minutes=1))
    live_revoke = _seed(one, 1, state=SessionState.revoking, end_reason=EndReason.expired, **live)
    live_grant = _seed(one, 1, state=SessionState.granting, **live)

    result = two.sweep()

    assert (result.retried, result.resumed, result.expired) == (dead_revoke, dead_grant, [])
    assert _states(two, dead_revoke + dead_grant) == {"ended": 1, "active": 1}
    assert _keys(webhook, "revoke") == {f"{dead_revoke[0]}:revoke": 1}
    assert _keys(webhook, "grant") == {f"{dead_grant[0]}:grant": 1}
    # Another replica is in the middle of these: their leases hold, nobody calls the provider.
    assert _states(two, live_revoke + live_grant) == {"revoking": 1, "granting": 1}
    assert resume_interrupted(two.ctx).retried == []  # a replica starting up keeps them too
    assert _states(two, live_revoke + live_grant) == {"revoking": 1, "granting": 1}
    assert len(webhook.actions()) == 2

    clock.travel(timedelta(minutes=2))  # now their worker has been gone too long
    later = one.sweep()
    assert (later.retried, later.resumed) == (live_revoke, live_grant)
    assert _states(one, live_revoke + live_grant) == {"ended": 1, "active": 1}


def test_rows_another_replica_is_claiming_are_skipped_not_waited_for(
    replicas: tuple[BotHarness, BotHarness],
) -> None:
    one, two = replicas
    locked, free = (_seed(one, 1, expires_at=clock.now() - timedelta(seconds=1)) for _ in (1, 2))
    claims: list[Any] = []
    claiming = threading.Thread(target=lambda: claims.append(claim_due_sessions(two.ctx, 10)))
    with transaction(one.ctx.db) as db:  # replica one, in the middle of its claim transaction
        db.scalars(select(AccessSession).where(AccessSession.id == locked[0]).with_for_update())
        claiming.start()
        claiming.join(timeout=2)
        assert claims, "replica two waited for a row replica one had locked"
    assert [s.id for s in claims[0].expired] == free
    assert _states(one, locked) == {"active": 1}  # left for whoever holds it (or the next sweep)


def test_sweep_queries_read_only_what_is_due_through_the_indexes(
    replicas: tuple[BotHarness, BotHarness],
) -> None:
    one, _ = replicas
    past, future = clock.now() - timedelta(minutes=5), clock.now() + timedelta(hours=2)
    _seed(one, 12_000, state=SessionState.ended, expires_at=past, ended_at=past)
    _seed(one, 7_900, expires_at=future)
    due = _seed(one, 50, expires_at=past)
    retry = _seed(one, 30, state=SessionState.revoke_failing, next_attempt_at=past)
    _seed(one, 20, state=SessionState.revoke_failing, next_attempt_at=future)
    engine = engine_of(one.ctx.db)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # VACUUM as autovacuum would by now: with the visibility map set, the planner costs an
        # index-only scan as it would in production, not as for a table written a moment ago
        connection.execute(text("VACUUM ANALYZE access_sessions"))
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AccessSession)) == 20_000
        plans = {kind: _plan(connection, due_sessions(kind, clock.now(), 16)) for kind in DUE}
    print("\n\n".join(f"-- {kind}\n{plan}" for kind, plan in plans.items()))
    assert "ix_sessions_state_expires on access_sessions" in plans["expired"]
    for kind in ("retried", "resumed"):
        assert "ix_sessions_state_next_attempt on access_sessions" in plans[kind]
    for plan in plans.values():
        assert "Seq Scan on access_sessions" not in plan
    with engine.connect() as connection:  # when to sweep next: the first entry of each index
        nexts = {kind: _plan(connection, next_due(kind), locking=False) for kind in DUE}
    print("\n\n".join(f"-- next {kind}\n{plan}" for kind, plan in nexts.items()))
    # the first entry of (state, expires_at); the rows of the states being retried (few)
    assert "Index Only Scan using ix_sessions_state_expires" in nexts["expired"]
    for kind in ("retried", "resumed"):
        assert "Index" in nexts[kind] and "ix_sessions_state_next_attempt" in nexts[kind]
    for plan in nexts.values():
        assert "Seq Scan on access_sessions" not in plan
    assert next_due_at(one.ctx) == past
    claims = claim_due_sessions(one.ctx, limit=1000)
    assert sorted(s.id for s in claims.expired) == due
    assert sorted(s.id for s in claims.retried) == retry


def _plan(connection: Any, statement: Select[Any], *, locking: bool = True) -> str:
    """EXPLAIN of `statement` exactly as the sweep sends it (values inlined)."""
    sql = statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    assert ("FOR UPDATE OF access_sessions SKIP LOCKED" in str(sql)) == locking
    return "\n".join(connection.exec_driver_sql(f"EXPLAIN {sql}").scalars())


# --- one provider call per access at a time, across replicas ---------------------------------


def test_a_revoke_waits_while_another_replica_holds_the_same_access(
    replicas: tuple[BotHarness, BotHarness], webhook: WebhookReceiver, pg_database: str
) -> None:
    one, _ = replicas
    session_id = _seed(one, 1)[0]
    with transaction(one.ctx.db) as db:
        identity = db.scalar(select(AccessSession.identity).where(AccessSession.id == session_id))
    assert identity is not None
    other = _held_elsewhere(pg_database, lock_key("holder", "orders-api", identity, GRANT))
    ending = threading.Thread(
        target=end_session, args=(one.ctx, session_id, EndReason.admin, "cli:ops")
    )
    try:
        ending.start()
        time.sleep(0.5)
        assert webhook.actions() == []  # the provider is not called while the lock is held
        assert _states(one, [session_id]) == {"revoking": 1}
    finally:
        other.close()  # the other replica is done (or died: the server drops its lock)
    ending.join(timeout=10)
    assert webhook.actions() == ["revoke"]
    assert _states(one, [session_id]) == {"ended": 1}


def test_a_revoke_whose_lock_the_database_refuses_is_recorded_failing_and_retried(
    replicas: tuple[BotHarness, BotHarness],
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Say PostgreSQL refuses the lock's connection (max_connections reached): the attempt is
    recorded as a failed revoke, retried with backoff, rather than left `revoking` until its
    two-minute lease runs out."""
    one, _ = replicas
    [session_id] = _seed(one, 1, expires_at=clock.now() - timedelta(seconds=1))
    engine = engine_of(one.ctx.db)
    nowhere = create_engine(engine.url.set(port=free_port()))  # nothing listens there
    monkeypatch.setitem(database._lock_pools, engine, nowhere)

    one.sweep()

    assert webhook.actions() == []  # no provider call without the lock
    with transaction(one.ctx.db) as db:
        failing = db.get_one(AccessSession, session_id)
        assert failing.state == SessionState.revoke_failing and failing.attempts == 1
        assert failing.last_error is not None and failing.last_error.startswith("database: ")
    assert _event_counts(one, "revoke_failed") == {session_id: 1}

    monkeypatch.undo()  # the database takes connections again
    clock.travel(timedelta(minutes=1))
    one.sweep()
    assert webhook.actions() == ["revoke"]
    assert _states(one, [session_id]) == {"ended": 1}


# --- one reconciliation run at a time ---------------------------------------------------------


def test_reconcile_skips_its_turn_while_another_replica_reconciles(
    replicas: tuple[BotHarness, BotHarness], webhook: WebhookReceiver, pg_database: str
) -> None:
    one, two = replicas
    _seed(one, 1)  # an active session whose access the target does not have: a finding
    other = _held_elsewhere(pg_database, lock_key("reconcile"))
    try:
        report = reconcile(one.ctx)
        assert report.skipped and report.active_checked == 0
        assert webhook.requests == []
    finally:
        other.close()

    webhook.delay(1.0)  # the first run's check takes a while: the second fires meanwhile
    reports = _at_once(lambda: reconcile(one.ctx), lambda: reconcile(two.ctx))
    assert sorted(r.skipped for r in reports) == [False, True]
    assert sum(len(r.findings) for r in reports) == 1
    assert sum(_event_counts(one, "access_missing").values()) == 1
    alerts = [c for c in one.slack.calls_to("chat.postMessage") if "Access drift" in c["text"]]
    assert len(alerts) == 1


# --- Slack retries and reminders ---------------------------------------------------------------


class _Recorder(SlackSender):
    """Builds a request as the sender would, and keeps it instead of sending it."""

    body = b""

    def post(self, body: bytes, **_: Any) -> Answer:
        self.body = body
        return Answer(200, "")


def test_the_same_approve_delivered_to_both_replicas_grants_once(
    replicas: tuple[BotHarness, BotHarness], webhook: WebhookReceiver
) -> None:
    one, two = replicas
    request_id = one.quick_request("orders-api write 1h PAY-40 hotfix", BOB)
    recorder = _Recorder(one.url, SIGNING_SECRET, one.slack.response_url())
    recorder.click("approve_request", request_id, LEAD1)
    now = int(time.time())
    # Two deliveries carry two timestamps, so two signatures, and both reach the approve
    # operation; the same signature twice would be refused as a replay (tests below).
    answers = _at_once(
        *(
            lambda bot=bot, at=at: bot.send.post(
                recorder.body, timestamp=at, signature=sign(SIGNING_SECRET, str(at), recorder.body)
            )
            for bot, at in ((one, now), (two, now - 1))
        )
    )

    assert [a.status for a in answers] == [200, 200]
    session = one.wait_session(request_id, SessionState.active)
    webhook.wait_for(1, action="grant")
    time.sleep(0.3)  # room for a second grant, were there one
    assert _keys(webhook, "grant") == {f"{session.id}:grant": 1}
    with transaction(one.ctx.db) as db:
        sessions = db.scalars(select(AccessSession).where(AccessSession.request_id == request_id))
        assert [s.id for s in sessions] == [session.id]
    assert _event_counts(one, "granted") == {session.id: 1}


def test_a_request_replayed_to_the_other_replica_is_refused(
    replicas: tuple[BotHarness, BotHarness], slack: FakeSlack
) -> None:
    one, two = replicas
    request_id = one.quick_request("orders-api write 1h PAY-41 hotfix", BOB)
    sent = one.send.last
    assert sent is not None

    answer = two.send.replay(sent)

    assert answer.status == 401 and answer.json() == {"error": "replayed request"}
    time.sleep(0.3)  # room for a second card, were there one
    with transaction(two.ctx.db) as db:
        assert list(db.scalars(select(AccessRequest.id))) == [request_id]
    cards = [
        c for c in slack.calls_to("chat.postMessage") if offers(c.get("blocks"), "approve_request")
    ]
    assert len(cards) == 1


def test_one_signed_approve_sent_to_both_replicas_at_once_is_handled_by_one(
    replicas: tuple[BotHarness, BotHarness], webhook: WebhookReceiver
) -> None:
    one, two = replicas
    request_id = one.quick_request("orders-api write 1h PAY-42 hotfix", BOB)
    recorder = _Recorder(one.url, SIGNING_SECRET, one.slack.response_url())
    recorder.click("approve_request", request_id, LEAD1)
    timestamp = str(int(time.time()))
    signature = sign(SIGNING_SECRET, timestamp, recorder.body)

    answers = _at_once(
        *(
            lambda bot=bot: bot.send.post(
                recorder.body, timestamp=int(timestamp), signature=signature
            )
            for bot in (one, two)
        )
    )

    assert sorted(a.status for a in answers) == [200, 401]
    session = one.wait_session(request_id, SessionState.active)
    webhook.wait_for(1, action="grant")
    time.sleep(0.3)  # room for a second grant, were there one
    assert _keys(webhook, "grant") == {f"{session.id}:grant": 1}


def test_closeout_reminders_run_by_both_replicas_are_sent_once(
    replicas: tuple[BotHarness, BotHarness],
) -> None:
    one, two = replicas
    ended = clock.now() - timedelta(minutes=20)  # the first reminder (15m) is due
    ids = _seed(
        one,
        60,
        state=SessionState.ended,
        ended_at=ended,
        closeout_state=CloseoutState.prompted,
        next_reminder_at=ended + timedelta(minutes=15),
    )

    sent = _at_once(one.reminders, two.reminders)

    assert sorted(sent[0] + sent[1]) == sorted(ids)
    assert _event_counts(one, "closeout_reminder") == {sid: 1 for sid in ids}
    eventually(lambda: len(_reminder_dms(one.slack)) >= len(ids), what="60 reminder DMs")
    time.sleep(0.2)
    dms = _reminder_dms(one.slack)
    assert sorted(dms) == sorted(ids)
    with transaction(one.ctx.db) as db:
        counts = db.scalars(select(AccessSession.reminders_sent).where(AccessSession.id.in_(ids)))
        assert set(counts) == {1}


def _reminder_dms(slack: FakeSlack) -> list[str]:
    """The session id named by every closeout reminder DM posted so far."""
    prefix = "Reminder: the closeout note for "
    return [
        c["text"].removeprefix(prefix).split(" ")[0]
        for c in slack.calls_to("chat.postMessage")
        if c.get("text", "").startswith(prefix)
    ]
