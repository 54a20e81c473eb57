"""PostgreSQL provider: GRANT / REVOKE a role to the person's database user.

The admin DSN comes from the variable the policy names (the environment or `.env`, never the
policy file); it and the password inside it are masked in every error, note and log line.
Identifiers are quoted by psycopg's `sql.Identifier`; no user text is ever formatted into SQL.
GRANT of a role already held and REVOKE of a role not held both succeed (PostgreSQL only warns).

A connection that ran `SET ROLE <grant>` keeps the role's rights after the REVOKE, so a revoke
also terminates the person's open connections (`terminate_sessions`, on by default); the admin
role needs `pg_signal_backend` (or superuser) for that. `check` looks at the direct membership
that GRANT creates and REVOKE removes (a membership through another role is the database's own
design, which a revoke here could not change).
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from app.providers.base import AccessGrant, ProviderError, env_secret
from app.text import register_dsn, short

HOLDS_ROLE = """
    SELECT EXISTS (
        SELECT 1 FROM pg_auth_members m
        JOIN pg_roles granted ON granted.oid = m.roleid
        JOIN pg_roles member ON member.oid = m.member
        WHERE granted.rolname = %s AND member.rolname = %s
    )
"""
# Roles whose attributes reach beyond what a grant should give: SUPERUSER, CREATEROLE,
# BYPASSRLS and REPLICATION are not inherited through membership, but SET ROLE takes them on,
# and a person mapped onto such a role (a service account, say) must not be handed rights.
PRIVILEGED = """
    SELECT rolname, concat_ws(', ',
        CASE WHEN rolsuper THEN 'SUPERUSER' END,
        CASE WHEN rolcreaterole THEN 'CREATEROLE' END,
        CASE WHEN rolbypassrls THEN 'BYPASSRLS' END,
        CASE WHEN rolreplication THEN 'REPLICATION' END)
    FROM pg_roles
    WHERE rolname = ANY(%s) AND (rolsuper OR rolcreaterole OR rolbypassrls OR rolreplication)
    ORDER BY rolname
"""
# pg_terminate_backend(pid, timeout) waits until the backend is gone (PostgreSQL 14+); it answers
# false both for "did not go in time" and "was already gone", so survivors are looked up after.
TERMINATE = """
    SELECT pid, pg_terminate_backend(pid, %s) FROM pg_stat_activity
    WHERE usename = %s AND pid <> pg_backend_pid()
"""
TERMINATE_WAIT_MS = 5000


class PostgresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dsn_env: str = Field(min_length=1)
    connect_timeout: int = Field(default=5, ge=1, le=60)
    terminate_sessions: bool = True


class PostgresProvider:
    Config = PostgresConfig

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._dsn = env_secret(config.dsn_env)
        # psycopg echoes a password it cannot parse (a stray %, a space) in its error.
        register_dsn(self._dsn)

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self.config.connect_timeout
            )
        except psycopg.Error as exc:
            raise ProviderError(f"cannot connect to PostgreSQL: {short(exc)}") from None
        except UnicodeError as exc:  # psycopg decodes a percent-escape that is not UTF-8
            raise ProviderError(
                f"the DSN in {self.config.dsn_env} cannot be read ({short(exc)}); nothing was "
                "sent to PostgreSQL",
                retryable=False,
            ) from None

    def _run(self, statement: sql.Composed) -> None:
        with self._connect() as conn:
            try:
                conn.execute(statement)
            except psycopg.errors.UndefinedObject as exc:
                raise ProviderError(short(exc), retryable=False) from None
            except psycopg.errors.InsufficientPrivilege as exc:
                raise ProviderError(short(exc), retryable=False) from None
            except psycopg.Error as exc:
                raise ProviderError(short(exc)) from None

    def grant(self, access: AccessGrant) -> None:
        """GRANT, unless the person's role or the granted role is privileged (see PRIVILEGED):
        a grant that would hand out more than the role's own rights is refused, never made."""
        with self._connect() as conn:
            try:
                rows = conn.execute(PRIVILEGED, ([access.identity, access.grant],)).fetchall()
            except psycopg.Error as exc:
                raise ProviderError(f"cannot read the roles' attributes: {short(exc)}") from None
        for name, attributes in rows:
            whose = "the person's role" if name == access.identity else "the granted role"
            raise ProviderError(
                f"refused: {whose} {name} has {attributes}; prod-access does not grant to or "
                "through such a role (a privileged role is not temporary access)",
                retryable=False,
            )
        self._run(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(access.grant), sql.Identifier(access.identity)
            )
        )

    def revoke(self, access: AccessGrant) -> str | None:
        self._run(
            sql.SQL("REVOKE {} FROM {}").format(
                sql.Identifier(access.grant), sql.Identifier(access.identity)
            )
        )
        if self.config.terminate_sessions:
            return self._terminate(access.identity)
        return None

    def _terminate(self, identity: str) -> str | None:
        """End every open connection of `identity`; a note for the audit trail if there were."""
        with self._connect() as conn:
            try:
                rows = conn.execute(TERMINATE, (TERMINATE_WAIT_MS, identity)).fetchall()
                pids = [pid for pid, _ in rows]
                survivors = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                ).fetchall()
            except psycopg.Error as exc:
                raise ProviderError(
                    f"revoked, but could not end {identity}'s open connections: {short(exc)}"
                ) from None
        if survivors:
            listed = ", ".join(str(pid) for (pid,) in survivors)
            raise ProviderError(
                f"revoked, but {identity}'s connections (pid {listed}) did not end "
                f"within {TERMINATE_WAIT_MS // 1000}s"
            )
        return f"ended {len(pids)} open connection(s)" if pids else None

    def check(self, access: AccessGrant) -> bool:
        """Is the role granted to the user right now (directly)?"""
        with self._connect() as conn:
            try:
                row = conn.execute(HOLDS_ROLE, (access.grant, access.identity)).fetchone()
            except psycopg.Error as exc:
                raise ProviderError(f"cannot check the membership: {short(exc)}") from None
        return bool(row and row[0])

    def probe(self) -> str:
        """Connect with the admin DSN and run one query."""
        with self._connect() as conn:
            try:
                row = conn.execute(
                    "SELECT current_user, current_database(), current_setting('server_version')"
                ).fetchone()
            except psycopg.Error as exc:
                raise ProviderError(f"connected, but a query failed: {short(exc)}") from None
        user, database, version = row or ("?", "?", "?")
        return f"connected as {user} to {database} (PostgreSQL {version})"
