"""`prod-access policy reload`: check the policy file here, then ask every running replica to
reload it, through the database (app/policy_reload_requests.py).

Rules it relies on: the file is checked as `policy check` checks it and nothing is requested
when it has an error (each finding printed, exit 1); the request names the file's sha256, so a
replica whose copy differs does not put another policy in force; the command only asks — what
each replica did is in its log, and the change (or the refusal) in the audit trail.
"""

from __future__ import annotations

import getpass
import sys

from app.cli_policy import default_policy_file
from app.config import load_settings
from app.db import DatabaseNotReady, make_engine, make_sessionmaker, require_set_up
from app.policy_check import ERROR, check_policy_file, summary
from app.policy_reload import file_sha256
from app.policy_reload_requests import request_reload


def reload(policy_file: str | None) -> int:
    """Exit 0 when requested, 1 when the file has errors, 2 when the database is not ready."""
    path = policy_file or default_policy_file()
    findings = check_policy_file(path)
    for finding in findings:
        print(finding)
    print(summary(path, findings))
    if any(finding.severity == ERROR for finding in findings):
        print("prod-access: nothing requested: fix the errors above first", file=sys.stderr)
        return 1
    settings = load_settings()
    try:
        require_set_up(settings.database_url)
    except DatabaseNotReady as exc:
        print(f"prod-access: {exc}: the bot has not run on DATABASE_URL", file=sys.stderr)
        return 2
    sha = file_sha256(path)
    engine = make_engine(settings.database_url)
    try:
        generation = request_reload(make_sessionmaker(engine), sha, _who())
    finally:
        engine.dispose()
    print(
        f"reload {generation} requested: sha256 {sha}; every replica reloads within "
        f"{settings.policy_reload_poll_seconds:g} s once its {settings.policy_file} has that "
        "hash (see its log, and `prod-access audit` for policy_changed)"
    )
    return 0


def _who() -> str:
    """Who asked, for the audit trail: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
