"""PostgreSQL provider: GRANT / REVOKE a role to the person's database user.

The admin DSN comes from the environment variable the policy names (never from the file).
Identifiers are quoted by psycopg's `sql.Identifier`; no user text is ever formatted into SQL.
GRANT of a role already held and REVOKE of a role not held both succeed (PostgreSQL only warns).
"""

from __future__ import annotations

import os

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from app.providers.base import AccessGrant, ProviderConfigError, ProviderError, short


class PostgresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dsn_env: str = Field(min_length=1)
    connect_timeout: int = Field(default=5, ge=1, le=60)


class PostgresProvider:
    Config = PostgresConfig

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        if not os.environ.get(config.dsn_env):
            raise ProviderConfigError(f"environment variable {config.dsn_env} is not set")

    def _connect(self) -> psycopg.Connection:
        dsn = os.environ.get(self.config.dsn_env, "")
        try:
            return psycopg.connect(
                dsn, autocommit=True, connect_timeout=self.config.connect_timeout
            )
        except psycopg.Error as exc:
            raise ProviderError(f"cannot connect to PostgreSQL: {short(exc)}") from None

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
        self._run(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(access.grant), sql.Identifier(access.identity)
            )
        )

    def revoke(self, access: AccessGrant) -> None:
        self._run(
            sql.SQL("REVOKE {} FROM {}").format(
                sql.Identifier(access.grant), sql.Identifier(access.identity)
            )
        )

    def check(self, access: AccessGrant) -> bool:
        """Is the role held right now (directly or through another role)?"""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT pg_has_role(%s, %s, 'MEMBER')", (access.identity, access.grant)
            ).fetchone()
        return bool(row and row[0])
