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
from tests.blocks_helpers import shows
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
    email_domains: [example.com]
    approvers: [U0LEAD1, U0LEAD2]
    approver_channel: C0CHECKOUT
    roles:
      - {id: read, grant: checkout_readonly, max_duration: 30m}
      - {id: write, grant: checkout_readwrite, max_duration: 2h}
      - {id: owner, grant: checkout_owner, max_duration: 30m}
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
        for role, attribute in (
            ("svc_checkout", "LOGIN CREATEROLE"),
            ("checkout_owner", "BYPASSRLS"),
        ):
            conn.execute(
                f"DO $$ BEGIN CREATE ROLE {role} {attribute}; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
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


def test_postgres_refuses_to_grant_to_a_privileged_role(
    pg_bot: BotHarness, target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # svc_checkout@example.com maps onto the service account svc_checkout (LOGIN CREATEROLE)
    monkeypatch.setitem(pg_bot.slack.users, "U0SVC", {"email": "svc_checkout@example.com"})
    request_id = pg_bot.quick_request("checkout-db read 30m PAY-1 look", "U0SVC")
    pg_bot.send.click("approve_request", request_id, LEAD1)
    session = pg_bot.wait_session(request_id, SessionState.grant_failed)
    assert "the person's role svc_checkout has CREATEROLE" in (session.last_error or "")
    assert not has_role(target_dsn, "svc_checkout", "checkout_readonly")


def test_postgres_refuses_to_grant_a_privileged_role(pg_bot: BotHarness, target_dsn: str) -> None:
    request_id = pg_bot.quick_request("checkout-db owner 30m PAY-1 own it", BOB)
    pg_bot.send.click("approve_request", request_id, LEAD1)
    session = pg_bot.wait_session(request_id, SessionState.grant_failed)
    assert "the granted role checkout_owner has BYPASSRLS" in (session.last_error or "")
    assert not has_role(target_dsn, "bob", "checkout_owner")
    card = pg_bot.slack.wait_for("chat.update", lambda a: shows(a.get("blocks"), "BYPASSRLS"))
    assert shows(card[-1]["blocks"], "Nothing was granted")


def test_a_dsn_psycopg_cannot_decode_is_a_clear_refusal_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.providers.base import AccessGrant, ProviderError
    from app.providers.postgres import PostgresConfig, PostgresProvider

    monkeypatch.setenv("TEST_PG_ADMIN_DSN", "postgresql://admin:pw%FFx@127.0.0.1:1/checkout")
    provider = PostgresProvider(PostgresConfig(dsn_env="TEST_PG_ADMIN_DSN"))
    access = AccessGrant(
        session_id="S-1", request_id="R-1", system="checkout-db", role="read",
        grant="checkout_readonly", slack_id=BOB, email="bob@example.com", identity="bob",
        ticket="PAY-1", reason="look", expires_at=None,
    )  # fmt: skip
    with pytest.raises(ProviderError) as refused:
        provider.grant(access)
    assert not refused.value.retryable  # nothing was sent: the grant's outcome is known
    assert "TEST_PG_ADMIN_DSN cannot be read" in str(refused.value)


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


def _as_user(dsn: str, user: str) -> str:
    """The same database, logged in as `user` (the test server trusts local logins)."""
    return dsn.replace("postgresql://postgres@", f"postgresql://{user}@", 1)


def _provider(target_dsn: str, monkeypatch: pytest.MonkeyPatch, **config: object):
    from app.providers.postgres import PostgresConfig, PostgresProvider

    monkeypatch.setenv("TEST_PG_ADMIN_DSN", target_dsn)
    return PostgresProvider(
        PostgresConfig.model_validate({"dsn_env": "TEST_PG_ADMIN_DSN", **config})
    )


def _orders_table(target_dsn: str) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
        conn.execute("GRANT SELECT ON orders TO checkout_readwrite")


def test_postgres_revoke_ends_the_connection_that_kept_the_role_with_set_role(
    target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.provider_contract import access_for

    _orders_table(target_dsn)
    provider = _provider(target_dsn, monkeypatch)
    access = access_for("bob", "checkout_readwrite")
    provider.grant(access)
    live = psycopg.connect(_as_user(target_dsn, "bob"), autocommit=True)
    live.execute("SET ROLE checkout_readwrite")
    assert live.execute("SELECT count(*) FROM orders").fetchone() == (1,)

    assert provider.revoke(access) == "ended 1 open connection(s)"

    with pytest.raises(psycopg.OperationalError):
        live.execute("SELECT count(*) FROM orders")
    live.close()
    assert not provider.check(access) and not has_role(target_dsn, "bob", "checkout_readwrite")
    assert provider.revoke(access) is None  # nothing left to end


def test_postgres_with_terminate_sessions_off_a_set_role_connection_keeps_the_rights(
    target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why terminating is the default: REVOKE alone leaves a SET ROLE session its rights."""
    from tests.provider_contract import access_for

    _orders_table(target_dsn)
    provider = _provider(target_dsn, monkeypatch, terminate_sessions=False)
    access = access_for("bob", "checkout_readwrite")
    provider.grant(access)
    with psycopg.connect(_as_user(target_dsn, "bob"), autocommit=True) as live:
        live.execute("SET ROLE checkout_readwrite")
        assert provider.revoke(access) is None
        assert not provider.check(access)
        assert live.execute("SELECT count(*) FROM orders").fetchone() == (1,)


def test_postgres_check_names_the_failure_when_the_server_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.providers.base import ProviderError
    from tests.provider_contract import access_for

    provider = _provider("postgresql://nobody@127.0.0.1:9/none", monkeypatch, connect_timeout=1)
    with pytest.raises(ProviderError, match=r"^cannot connect to PostgreSQL: "):
        provider.check(access_for("bob", "checkout_readwrite"))


def test_reconcile_command_revokes_a_role_granted_again_after_expiry(
    pg_bot: BotHarness,
    target_dsn: str,
    pg_database: str,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    import os

    from tests.conftest import run_cli_here

    request_id = pg_bot.quick_request("checkout-db write 1h PAY-40 fix the index", BOB)
    pg_bot.send.click("approve_request", request_id, LEAD1)
    session = pg_bot.wait_session(request_id, SessionState.active)
    clock.travel(timedelta(hours=1, seconds=1))
    pg_bot.sweep()
    pg_bot.wait_session(request_id, SessionState.ended)
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("GRANT checkout_readwrite TO bob")  # a DBA, behind the bot's back

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    env |= {
        "DATABASE_URL": pg_database,
        "POLICY_FILE": str(tmp_path / "policy.yml"),
        "SLACK_BOT_TOKEN": "xoxb-cli-token",
        "SLACK_API_URL": slack.url,
    }
    found = run_cli_here(tmp_path, env, "reconcile")

    assert found.returncode == 1, found.stderr
    summary, header, row = found.stdout.splitlines()
    assert summary == "checked 1 recently ended access(es) and 0 active session(s): 1 finding(s)"
    assert header.split() == [
        "FINDING", "SESSION", "SYSTEM", "ROLE", "IDENTITY", "GRANT", "OUTCOME", "DETAIL"
    ]  # fmt: skip
    assert row.split()[:7] == [
        "standing_access", session.id, "checkout-db", "write", "bob", "checkout_readwrite",
        "revoked",
    ]  # fmt: skip
    assert not has_role(target_dsn, "bob", "checkout_readwrite")
    card = pg_bot.request(request_id)
    alert = slack.wait_for("chat.postMessage", lambda a: "Access drift" in a.get("text", ""))[0]
    assert (alert["channel"], alert["thread_ts"]) == ("C0CHECKOUT", card.card_ts)

    clean = run_cli_here(tmp_path, env, "reconcile")
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip().endswith(": 0 finding(s)")
