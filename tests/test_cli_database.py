"""The operator commands that read or change what the bot stored (audit, sessions, review,
reconcile, revoke) on a database that is not set up yet: one line saying what to run, exit 2,
no traceback, and no empty SQLite file left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_cli_here

COMMANDS = [
    ("audit",),
    ("audit", "verify"),
    ("audit", "export", "--format", "csv"),
    ("sessions",),
    ("review",),
    ("reconcile",),
    ("revoke", "S-AAAAAAAA"),
]


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    return {**clean, "DATABASE_URL": database_url, "POLICY_FILE": str(tmp_path / "policy.yml")}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_command_on_a_missing_database_says_to_set_it_up_and_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    database = tmp_path / "prod-access.db"
    result = run_cli_here(tmp_path, _env(tmp_path, f"sqlite:///{database}"), *command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "run `prod-access db upgrade`" in line and "DATABASE_URL" in line
    assert not database.exists()


def test_an_empty_postgresql_database_is_told_the_same(tmp_path: Path, pg_database: str) -> None:
    # a process of its own: the exit status 2 reaches the shell through `python -m app`
    result = run_cli(tmp_path, _env(tmp_path, pg_database), "sessions")
    assert result.returncode == 2, result.stderr
    assert "has no tables yet" in result.stderr and "prod-access db upgrade" in result.stderr
