"""The `prod-access` command line: serve | check | policy [check | explain | diff] |
db upgrade | audit [verify | export] | review | reconcile | sessions | revoke | delegate.

Start-up problems (a missing setting, a bad policy file) print one line that names the variable
or the file:line:key and exit with status 2; nothing starts half-configured. `serve` prints
every such problem at once (app/serve.py); `check` reports them in its table (exit 1) and goes
on checking the rest. The options and their help are in app/cli_parser.py.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from app import audit
from app.cli_parser import build_parser
from app.config import Settings, SettingsError, load_settings
from app.db import DatabaseNotReady, require_set_up
from app.logging import setup_logging
from app.policy import PolicyError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return _check(as_json=args.json)
    if args.command == "policy":
        from app.cli_policy import run_policy

        return run_policy(args)
    if args.command == "serve":
        from app.serve import serve

        return serve(socket=True if args.socket else False if args.http else None)

    try:
        settings = load_settings()
        setup_logging(settings.log_format, settings.log_level)
        if args.command == "db":
            from app.db import upgrade

            upgrade(settings.database_url)
            print("database is up to date")
            return 0
        # The other commands read or change what the bot stored: a database that is not set up
        # yet is said so in one line (and a SQLite file is not created by asking).
        require_set_up(settings.database_url)
        if args.command == "reconcile":
            return _reconcile(settings)
        if args.command == "sessions":
            return _sessions(settings, args)
        if args.command == "revoke":
            if args.policy:
                settings = settings.model_copy(update={"policy_file": args.policy})
            return _revoke(settings, args)
        if args.command == "audit":
            return _audit(settings.database_url, args)
        if args.command == "review":
            return _review(settings, args)
        if args.command == "delegate":
            from app.cli_delegate import run_delegate

            return run_delegate(settings, args)
    except (SettingsError, PolicyError) as exc:
        print(f"prod-access: {exc}", file=sys.stderr)
        return 2
    except DatabaseNotReady as exc:
        print(
            f"prod-access: {exc} (DATABASE_URL): run `prod-access db upgrade` to set it up "
            "(`prod-access serve` does it at start)",
            file=sys.stderr,
        )
        return 2
    return 1


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _audit(url: str, args: argparse.Namespace) -> int:
    from app.db import make_engine, make_sessionmaker

    sessions = make_sessionmaker(make_engine(url))
    with sessions() as db:
        if args.audit_action == "verify":
            verdict = audit.verify(db)
            print(verdict)
            return 0 if verdict.ok else 1
        if args.audit_action == "export":
            where = audit.EventFilter(args.since, args.until, args.system, args.user)
            with _output(args.output) as out:
                count = _export(audit.stream(db, where), args.format, out)
            if args.output:
                print(f"exported {count} events to {args.output}", file=sys.stderr)
            return 0
        rows = [audit.as_dict(e) for e in audit.events(db, args.request)]
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    columns = ["at", "event", "actor", "request_id", "session_id", "system", "role", "ticket"]
    _print_table(columns, [[row[c] for c in columns] for row in rows])
    return 0


def _print_table(columns: list[str], rows: list[list[object]]) -> None:
    """A plain text table: upper-case headers, columns padded to their widest cell."""
    table = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _export(rows: Iterable[audit.AuditEvent], fmt: str, out: TextIO) -> int:
    """Stream events out in audit.COLUMNS order; returns how many."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(audit.COLUMNS)
        for event in rows:
            row = audit.as_dict(event)
            row["detail"] = json.dumps(row["detail"], sort_keys=True, ensure_ascii=False)
            writer.writerow([row[c] for c in audit.COLUMNS])
            count += 1
    else:
        for event in rows:
            out.write(json.dumps(audit.as_dict(event), ensure_ascii=False) + "\n")
            count += 1
    return count


def _review(settings: Settings, args: argparse.Namespace) -> int:
    from app import clock
    from app.db import make_engine, make_sessionmaker
    from app.policy import load_policy
    from app.review import build_review, render

    policy = load_policy(settings.policy_file)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions() as db:
        review = build_review(db, policy, args.since, args.until or clock.now())
    with _output(args.output) as out:
        out.write(render(review, args.format))
    if args.output:
        print(review.summary(), file=sys.stderr)
    return 0


def _check(*, as_json: bool) -> int:
    """One line per check (OK / PROBLEM and what to do); exit 0 when all are OK, else 1."""
    from app.doctor import run_checks

    results = run_checks()
    problems = sum(1 for result in results if not result.ok)
    if as_json:
        for result in results:
            print(json.dumps(result.as_dict()))
    else:
        _print_table(
            ["check", "status", "detail"], [[r.check, r.status, r.detail] for r in results]
        )
        print(
            f"{problems} problem(s) in {len(results)} checks"
            if problems
            else f"all {len(results)} checks OK"
        )
    return 1 if problems else 0


def _reconcile(settings: Settings) -> int:
    """Reconciliation once (alerts go to Slack when a bot token is set); a table of findings.
    Exit status 0 when everything matched, 1 when anything was found, 2 when another replica
    was reconciling at that moment (nothing was checked)."""
    from app.jobs.reconcile import reconcile
    from app.runtime import build_context

    report = reconcile(build_context(settings))
    if report.skipped:
        print("skipped: another replica is reconciling right now; try again in a moment")
        return 2
    print(
        f"checked {report.ended_checked} recently ended access(es) and "
        f"{report.active_checked} active session(s): {len(report.findings)} finding(s)"
    )
    if report.clean:
        return 0
    columns = ["finding", "session", "system", "role", "identity", "grant", "outcome", "detail"]
    _print_table(
        columns,
        [
            [f.kind, f.session_id, f.system, f.role, f.identity, f.grant, f.outcome, f.detail]
            for f in report.findings
        ],
    )
    return 1


def _sessions(settings: Settings, args: argparse.Namespace) -> int:
    """Sessions, newest first, filtered; a table or JSON lines."""
    from sqlalchemy import select

    from app.audit import iso
    from app.db import make_engine, make_sessionmaker
    from app.models import AccessSession

    query = select(AccessSession).order_by(AccessSession.created_at.desc()).limit(args.limit)
    if args.state:
        query = query.where(AccessSession.state == args.state)
    if args.user:
        query = query.where(AccessSession.requester_id == args.user)
    if args.system:
        query = query.where(AccessSession.system_id == args.system)
    with make_sessionmaker(make_engine(settings.database_url))() as db:
        rows = [
            {
                "id": s.id,
                "state": s.state.value,
                "user": s.requester_id,
                "system": s.system_id,
                "role": s.role_id,
                "identity": s.identity,
                "ticket": s.request.ticket,
                "granted_at": iso(s.granted_at) if s.granted_at else None,
                "expires_at": iso(s.expires_at) if s.expires_at else None,
                "ended_at": iso(s.ended_at) if s.ended_at else None,
                "last_error": s.last_error,
            }
            for s in db.scalars(query)
        ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    columns = ["id", "state", "user", "system", "role", "ticket", "expires_at", "ended_at"]
    _print_table(columns, [[row[c] for c in columns] for row in rows])
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Emergency revoke by an operator, audited as `cli:<login>`; Slack is told when a bot
    token is set. Exit 0 once the provider confirmed, 1 while it is still failing."""
    from app.models import AccessSession, EndReason, SessionState
    from app.operations.common import read_row
    from app.operations.end_session import end_session
    from app.operations.errors import OperationError
    from app.operations.policy_change import covers
    from app.runtime import build_context

    actor = f"cli:{getpass.getuser()}"
    ctx = build_context(settings)
    try:
        current = read_row(ctx, AccessSession, args.session_id)
        if not covers(ctx.policy, current):
            print(
                f"prod-access: {current.id} is for {current.system_id} {current.role_id}, which "
                f"{settings.policy_file} does not have, so nothing could revoke it. Run "
                f"`prod-access revoke {current.id} --policy FILE` with a policy file that still "
                "has it (e.g. the previous version from your repository).",
                file=sys.stderr,
            )
            return 2
        session = end_session(ctx, args.session_id, EndReason.admin, actor, note=args.note)
    except OperationError as exc:
        print(f"prod-access: {exc}", file=sys.stderr)
        return 2
    if session.state == SessionState.ended:
        print(f"{session.id}: access ended and revoked at the provider (audited as {actor})")
        return 0
    print(
        f"{session.id}: {session.state.value}: {session.last_error}; the bot retries it "
        "(see `prod-access sessions --state revoke_failing`)",
        file=sys.stderr,
    )
    return 1
