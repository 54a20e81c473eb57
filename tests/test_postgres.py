"""Against a real PostgreSQL server: the `postgres` provider's GRANT/REVOKE as seen by
pg_has_role, and the whole loop with the bot's own database on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from app import clock
from app.models import SessionState
from tests.conftest import BOB, LEAD1, BotHarness, make_settings, write_policy
from tests.fakes.postgres import PostgresServer
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

CHECKOUT_DB = """\
  - id: checkout-db
    name: Checkout database
    provider: postgres
    config: {dsn_env: TEST_PG_ADMIN_DSN}
    identity: '{email_local}'
    approvers: [U0LEAD1, U0LEAD2]
    approver_channel: C0CHECKOUT
    roles:
      - {id: read, grant: checkout_readonly, max_duration: 30m}
      - {id: write, grant: checkout_readwrite, max_duration: 2h}
users:
  U0MALLORY: {identity: 'mallory"; DROP ROLE checkout_readwrite; --'}
"""


_numbers = itertools.count(1)


@pytest.fixture
def target_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """A database standing in for the team's checkout DB, with its roles and people."""
    dsn = pg_server.create_database(f"checkout_{next(_numbers)}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role in ("checkout_readonly", "checkout_readwrite", "bob"):
            conn.execute(
                f"DO $$ BEGIN CREATE ROLE {role}{' LOGIN' if role == 'bob' else ''}; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        conn.execute("REVOKE checkout_readwrite, checkout_readonly FROM bob")
    yield dsn


def has_role(dsn: str, user: str, role: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (user, role)).fetchone()
        return bool(row and row[0])


@pytest.fixture
def pg_bot(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    pg_database: str,
    target_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[BotHarness]:
    monkeypatch.setenv("TEST_PG_ADMIN_DSN", target_dsn)
    policy = write_policy(tmp_path / "policy.yml", webhook.url, CHECKOUT_DB)
    harness = BotHarness(make_settings(tmp_path, slack, policy, pg_database), slack)
    yield harness
    harness.stop()


def test_postgres_grant_is_visible_in_pg_has_role_and_gone_after_expiry(
    pg_bot: BotHarness, target_dsn: str
) -> None:
    assert pg_bot.ctx.db.kw["bind"].dialect.name == "postgresql"  # the bot's own db is real PG
    request_id = pg_bot.quick_request("checkout-db write 1h PAY-184 restart payment worker", BOB)
    assert not has_role(target_dsn, "bob", "checkout_readwrite")
    pg_bot.send.click("approve_request", request_id, LEAD1)
    session = pg_bot.wait_session(request_id, SessionState.active)
    assert session.identity == "bob"
    assert has_role(target_dsn, "bob", "checkout_readwrite")
    assert not has_role(target_dsn, "bob", "checkout_readonly")

    clock.travel(timedelta(hours=1, seconds=1))
    pg_bot.sweep()
    pg_bot.wait_session(request_id, SessionState.ended)
    assert not has_role(target_dsn, "bob", "checkout_readwrite")


def test_postgres_identifiers_are_quoted_never_formatted(
    pg_bot: BotHarness, target_dsn: str
) -> None:
    request_id = pg_bot.quick_request("checkout-db write 1h PAY-1 try it", "U0MALLORY")
    pg_bot.send.click("approve_request", request_id, LEAD1)
    session = pg_bot.wait_session(request_id, SessionState.grant_failed)
    assert "does not exist" in session.last_error  # a role literally named 'mallory"; DROP …'
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'checkout_readwrite'")
        assert row.fetchone() is not None  # nothing was dropped


def test_postgres_grant_twice_and_revoke_twice_succeed(target_dsn: str, monkeypatch) -> None:
    from app.providers.base import AccessGrant
    from app.providers.postgres import PostgresConfig, PostgresProvider

    monkeypatch.setenv("TEST_PG_ADMIN_DSN", target_dsn)
    provider = PostgresProvider(PostgresConfig(dsn_env="TEST_PG_ADMIN_DSN"))
    access = AccessGrant(
        session_id="S-1",
        request_id="R-1",
        system="checkout-db",
        role="read",
        grant="checkout_readonly",
        slack_id=BOB,
        email="bob@example.com",
        identity="bob",
        ticket="PAY-1",
        reason="x",
        expires_at=None,
    )
    provider.grant(access)
    provider.grant(access)
    assert provider.check(access) and has_role(target_dsn, "bob", "checkout_readonly")
    provider.revoke(access)
    provider.revoke(access)
    assert not provider.check(access)
