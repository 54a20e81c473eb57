"""Audit streaming to each kind of sink, over real HTTP on 127.0.0.1 (a strict fake Splunk HEC,
the signed-webhook target), moto's S3 and a temporary file: every event arrives exactly as
recorded (a receiver re-verifies the hash chain from what it got), in order, with its
idempotency key; a sink that is down or answers 503 gets everything once it is back; lag and
failures show in /metrics and `prod-access check`. Replicas and memory: test_audit_sinks_scale.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import audit, clock, metrics
from app.audit_sinks import deliver
from app.audit_sinks.deliver import deliver_to_all
from app.audit_sinks.status import check_rows
from app.audit_sinks.targets import SinkKind, configured, parse_sinks
from app.config import Settings, SettingsError, load_settings
from app.db import make_engine, make_sessionmaker, reading, transaction, upgrade
from app.models import AuditEvent
from app.models_features import AuditSinkCursor
from tests.conftest import WEBHOOK_SECRET
from tests.fakes.hec_receiver import HecReceiver
from tests.fakes.webhook_receiver import WebhookReceiver

HEC_TOKEN = "hec-token-5f0c1a2b-3c4d"
CANONICAL_KEYS = ("seq", "at", "event", "actor", "request_id", "session_id", "system", "role")
CANONICAL_KEYS += ("ticket", "detail")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield url, make_sessionmaker(engine)
    engine.dispose()


def sink_settings(url: str, sinks: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        audit_sinks=sinks,
        audit_sink_token=HEC_TOKEN,  # type: ignore[arg-type]
        audit_sink_secret=WEBHOOK_SECRET,  # type: ignore[arg-type]
        audit_sink_retry_base_seconds=10,
        audit_sink_retry_max_seconds=60,
    )


def append(
    db: sessionmaker[Session], count: int, first: int = 1, at: datetime | None = None
) -> None:
    """`count` events, as operations record them (one chain, UTF-8 text in the detail)."""
    with transaction(db) as session:
        for n in range(first, first + count):
            detail = f"nº {n}: café ✓ <b>"
            audit.record(session, "requested", f"U0USER{n % 7}", at=at, reason=detail)


def recorded(db: sessionmaker[Session]) -> list[dict[str, Any]]:
    with reading(db) as session:
        return [audit.as_dict(row) for row in audit.events(session)]


def assert_rechains(events: Sequence[dict[str, Any]]) -> None:
    """What a SIEM can do with what it received: recompute every hash from the event's own
    fields (sha256 of prev_hash + canonical JSON), without prod-access's code."""
    previous = "0" * 64
    for expected_seq, event in enumerate(events, start=1):
        assert event["seq"] == expected_seq
        hashed = {key: event[key] for key in CANONICAL_KEYS}
        if event.get("policy_sha256") is not None:  # hashed when present (events since 0009)
            hashed["policy_sha256"] = event["policy_sha256"]
        canonical = json.dumps(
            hashed,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert event["prev_hash"] == previous
        assert hashlib.sha256((previous + canonical).encode()).hexdigest() == event["hash"]
        previous = event["hash"]


def cursor(db: sessionmaker[Session]) -> AuditSinkCursor:
    with reading(db) as session:
        row = session.scalars(select(AuditSinkCursor)).one()
        return row


# --- which sink a URL is ---------------------------------------------------------------------


def test_sink_urls_are_told_apart_and_plain_http_is_refused_beyond_this_machine() -> None:
    token, secret = SecretStr("hec-token"), SecretStr("hmac-secret")
    kinds = [
        t.kind
        for t in parse_sinks(
            "https://splunk.example.com:8088/services/collector/event?index=audit,"
            "http://127.0.0.1:8088/services/collector/raw, s3://audit-bucket/prod,"
            "file:///var/log/prod-access/audit.jsonl",
            token,
            secret,
        )
    ]
    assert kinds == [SinkKind.hec, SinkKind.hec, SinkKind.s3, SinkKind.file]
    with pytest.raises(SettingsError, match=r"^AUDIT_SINKS is invalid: http://siem\.example\.com"):
        load_settings(_env_file=None, audit_sinks="http://siem.example.com/in")
    with pytest.raises(SettingsError, match="signed with AUDIT_SINK_SECRET"):
        load_settings(_env_file=None, audit_sinks="https://siem.example.com/in")
    with pytest.raises(SettingsError, match="is Splunk HEC: set AUDIT_SINK_TOKEN"):
        load_settings(_env_file=None, audit_sinks="https://s.example.com/services/collector")
    # the id and the shown form leave out what may be secret: user:password and the query
    [target] = parse_sinks("https://u:pw@siem.example.com/in?key=abc", None, secret)
    assert target.shown == "https://siem.example.com/in"
    assert target.id == parse_sinks("https://siem.example.com/in?key=new", None, secret)[0].id


# --- each kind of sink -----------------------------------------------------------------------


def test_splunk_hec_receives_every_event_as_recorded_with_its_token_and_seq_and_hash_fields(
    database: tuple[str, sessionmaker[Session]],
) -> None:
    url, db = database
    append(db, 7)
    with HecReceiver(HEC_TOKEN) as hec:
        [delivery] = deliver_to_all(sink_settings(url, hec.url), db)
        assert (delivery.events, delivery.through, delivery.error) == (7, 7, None)
        [request] = hec.requests
        assert request.headers["authorization"] == f"Splunk {HEC_TOKEN}"
        assert request.headers["content-type"] == "application/json"
        assert len(request.body.splitlines()) == 7  # HEC's batch: one event object per line
        for obj, event in zip(hec.objects, recorded(db), strict=True):
            assert set(obj) == {"time", "source", "sourcetype", "event", "fields"}
            assert obj["event"] == event
            assert obj["fields"] == {"seq": str(event["seq"]), "hash": event["hash"]}
            assert obj["sourcetype"] == "prod-access:audit"
            assert obj["time"] == pytest.approx(datetime.fromisoformat(event["at"]).timestamp())
        assert_rechains(hec.events)
        assert "nº 7: café ✓ <b>" in request.body.decode("utf-8")
        assert deliver_to_all(sink_settings(url, hec.url), db)[0].events == 0  # nothing twice


def test_a_wrong_hec_token_is_a_failure_kept_with_splunks_answer_and_nothing_is_skipped(
    database: tuple[str, sessionmaker[Session]],
) -> None:
    url, db = database
    append(db, 3)
    with HecReceiver("another-token-0000") as hec:
        [delivery] = deliver_to_all(sink_settings(url, hec.url), db)
    assert delivery.error is not None and "HTTP 403" in delivery.error
    assert "Invalid token" in delivery.error and HEC_TOKEN not in delivery.error
    row = cursor(db)
    assert (row.delivered_seq, row.sending_through, row.attempts) == (0, 3, 1)
    assert row.next_attempt_at is not None and row.next_attempt_at > clock.now()


def test_generic_https_sink_posts_signed_json_with_the_batchs_idempotency_key(
    database: tuple[str, sessionmaker[Session]], webhook: WebhookReceiver
) -> None:
    url, db = database
    append(db, 4)
    settings = sink_settings(url, webhook.url)
    webhook.respond_with(503)
    assert "HTTP 503" in str(deliver_to_all(settings, db)[0].error)
    append(db, 2, first=5)  # arrives while the sink is failing
    clock.travel(timedelta(seconds=61))
    [delivery] = deliver_to_all(settings, db)
    assert (delivery.events, delivery.batches) == (6, 2)
    failed, first, second = webhook.requests
    assert all(r.signature_valid for r in webhook.requests)
    events = recorded(db)
    # the failed batch is sent again as it was (same range, same key), then what came after
    assert first.raw == failed.raw
    assert first.body == {"first_seq": 1, "last_seq": 4, "events": events[:4]}
    assert first.headers["idempotency-key"] == f"1-4-{events[3]['hash']}"
    assert failed.headers["idempotency-key"] == first.headers["idempotency-key"]
    assert second.headers["idempotency-key"] == f"5-6-{events[5]['hash']}"
    assert_rechains(first.body["events"] + second.body["events"])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(
            Bucket="audit-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


def objects(client: Any) -> dict[str, list[dict[str, Any]]]:
    listed = client.list_objects_v2(Bucket="audit-bucket").get("Contents", [])
    return {
        o["Key"]: [
            json.loads(line)
            for line in client.get_object(Bucket="audit-bucket", Key=o["Key"])["Body"]
            .read()
            .decode()
            .splitlines()
        ]
        for o in listed
    }


def test_s3_gets_one_json_lines_object_per_ended_minute_and_a_resend_overwrites_it(
    database: tuple[str, sessionmaker[Session]], s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, db = database
    settings = sink_settings(url, "s3://audit-bucket/prod")
    append(db, 3)
    clock.travel(timedelta(minutes=1))
    append(db, 2, first=4)
    deliver_to_all(settings, db)  # the first minute has ended; the second has not
    [(key, lines)] = objects(s3).items()
    assert key.startswith("prod/") and key.endswith("/000000000001-000000000003.jsonl")
    assert lines == recorded(db)[:3]

    # killed after the put, before the cursor moved: the same range goes again, same key
    clock.travel(timedelta(minutes=1))
    monkeypatch.setattr(deliver, "_advance", _crash)
    with pytest.raises(SystemExit):
        deliver_to_all(settings, db)
    monkeypatch.undo()
    clock.travel(deliver.LEASE)  # the dead process's lease runs out
    # committed late, stamped in the same minute as 4 and 5: a later object takes it
    append(db, 1, first=6, at=_at(db, 5))
    deliver_to_all(settings, db)
    found = objects(s3)
    assert sorted(k.rsplit("/", 1)[1] for k in found) == [
        "000000000001-000000000003.jsonl",
        "000000000004-000000000005.jsonl",
        "000000000006-000000000006.jsonl",
    ]
    assert_rechains([e for key in sorted(objects(s3)) for e in objects(s3)[key]])
    assert cursor(db).delivered_seq == 6


def _at(db: sessionmaker[Session], seq: int) -> datetime:
    with reading(db) as session:
        return session.scalars(select(AuditEvent.at).where(AuditEvent.seq == seq)).one()


def _crash(*_: object) -> None:
    raise SystemExit("killed between the send and the commit")


def test_a_file_holds_every_event_once_in_order_after_a_crash_and_a_torn_line(
    database: tuple[str, sessionmaker[Session]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, db = database
    path = tmp_path / "audit.jsonl"
    settings = sink_settings(url, path.as_uri())
    append(db, 5)
    monkeypatch.setattr(deliver, "_advance", _crash)
    with pytest.raises(SystemExit):
        deliver_to_all(settings, db)  # written, then killed before the cursor moved
    monkeypatch.undo()
    with path.open("ab") as handle:  # and a later write cut short
        handle.write(b'{"seq":6,"at":"2026-')
    append(db, 3, first=6)
    clock.travel(deliver.LEASE)
    [delivery] = deliver_to_all(settings, db)
    assert delivery.error is None and delivery.through == 8
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == recorded(db)
    assert_rechains(lines)


# --- outages ---------------------------------------------------------------------------------


def test_a_sink_down_then_busy_gets_everything_in_order_when_it_is_back(
    database: tuple[str, sessionmaker[Session]],
) -> None:
    url, db = database
    failures = metrics.AUDIT_SINK_FAILURES
    with HecReceiver(HEC_TOKEN) as hec:
        settings = sink_settings(url, hec.url)
        [target] = configured(settings)
        before = failures.labels(sink=target.shown)._value.get()
        append(db, 600)  # more than a batch
        hec.stop()  # down: nothing listens on its port
        [down] = deliver_to_all(settings, db)
        assert down.error is not None and "unreachable" in down.error
        append(db, 50, first=601)
        assert deliver_to_all(settings, db)[0].skipped == "waiting to retry"
        hec.restart()
        hec.busy(times=2)  # back, but busy: 503 twice
        for attempt in (2, 3):
            clock.travel(timedelta(seconds=61))
            [busy] = deliver_to_all(settings, db)
            assert busy.error is not None and "HTTP 503" in busy.error
            assert cursor(db).attempts == attempt
        clock.travel(timedelta(seconds=61))
        [back] = deliver_to_all(settings, db)
        assert (back.error, back.events, back.through) == (None, 650, 650)
        assert [e["seq"] for e in hec.events] == list(range(1, 651))
        assert hec.events == recorded(db)
        row = cursor(db)
        assert (row.attempts, row.last_error, row.sending_through) == (0, None, None)
        assert failures.labels(sink=target.shown)._value.get() - before == 3


def test_lag_and_failures_show_in_metrics_and_check_without_the_token(
    database: tuple[str, sessionmaker[Session]],
) -> None:
    url, db = database
    append(db, 5)
    clock.travel(timedelta(seconds=90))
    with HecReceiver(HEC_TOKEN) as hec:
        settings = sink_settings(url, hec.url)
        hec.busy()
        deliver_to_all(settings, db)
        text = metrics.render(db, configured(settings)).decode()
        sink = f'sink="{configured(settings)[0].shown}"'
        assert f"prod_access_audit_sink_lag_events{{{sink}}} 5.0" in text
        seconds = float(text.split(f"prod_access_audit_sink_lag_seconds{{{sink}}} ")[1].split()[0])
        assert 89 <= seconds < 120
        assert f"prod_access_audit_sink_failures_total{{{sink}}}" in text
        [(check, ok, detail)] = check_rows(settings)
        assert check == f"audit sink hec {hec.url}"
        assert not ok and "HTTP 503" in detail and "behind by 5 event(s)" in detail
        assert "reachable" in detail and HEC_TOKEN not in detail
        clock.travel(timedelta(seconds=61))
        deliver_to_all(settings, db)
        [(_, ok, detail)] = check_rows(settings)
        assert ok and detail.endswith("up to date (seq 5)")


def test_migration_0008_adds_and_removes_the_cursor_table(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from app.db import alembic_config

    url = f"sqlite:///{tmp_path / 'migrate.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    engine = make_engine(url)
    columns = [c["name"] for c in inspect(engine).get_columns("audit_sink_cursors")]
    assert columns == [c.name for c in AuditSinkCursor.__table__.columns]
    command.downgrade(config, "0007")
    assert "audit_sink_cursors" not in inspect(engine).get_table_names()
    engine.dispose()
