"""The `prod-access` command line: serve | db upgrade | audit.

Start-up problems (a missing setting, a bad policy file) print one line that names the variable
or the file:line:key and exit with status 2; nothing starts half-configured.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app import audit
from app.config import Settings, SettingsError, load_settings
from app.logging import setup_logging
from app.policy import PolicyError

if TYPE_CHECKING:
    from app.runtime import Bot


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="prod-access", description="Temporary, task-bound production access through Slack."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the bot (HTTP, or Socket Mode with an app token)"
    )
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--http", action="store_true", help="serve POST /slack/events on $PORT")
    mode.add_argument("--socket", action="store_true", help="connect with Socket Mode")
    db = commands.add_parser("db", help="database tasks")
    db.add_argument("action", choices=["upgrade"], help="apply Alembic migrations")
    audit_cmd = commands.add_parser("audit", help="print the audit trail")
    audit_cmd.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    audit_cmd.add_argument("--request", help="only the events of this request id")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
        setup_logging(settings.log_format, settings.log_level)
        if args.command == "serve":
            return _serve(settings, socket=_socket_mode(settings, args))
        if args.command == "db":
            from app.db import upgrade

            upgrade(settings.database_url)
            print("database is up to date")
            return 0
        if args.command == "audit":
            return _audit(settings.database_url, as_json=args.json, request_id=args.request)
    except (SettingsError, PolicyError) as exc:
        print(f"prod-access: {exc}", file=sys.stderr)
        return 2
    return 1


def _socket_mode(settings: Settings, args: argparse.Namespace) -> bool:
    if args.http:
        return False
    if args.socket:
        return True
    return settings.slack_app_token is not None


def _serve(settings: Settings, *, socket: bool) -> int:
    from app.runtime import build_bot

    bot = build_bot(settings, socket=socket)
    if socket:
        assert settings.slack_app_token is not None  # build_bot checked it
        return _serve_socket(bot, settings.slack_app_token.get_secret_value())
    from app.web import GunicornServer, make_wsgi_app

    GunicornServer(
        make_wsgi_app(bot),
        bot,
        port=settings.port,
        threads=settings.web_threads,
    ).run()
    return 0


def _serve_socket(bot: Bot, app_token: str) -> int:
    """Socket Mode until SIGTERM/SIGINT, then stop in order: no new events, finish the work
    already acknowledged, stop the timers."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    handler = SocketModeHandler(bot.bolt, app_token)
    bot.start_timers()
    try:
        handler.connect()
        stop.wait()
    finally:
        handler.close()
        bot.stop()
    return 0


def _audit(url: str, *, as_json: bool, request_id: str | None) -> int:
    from app.db import make_engine, make_sessionmaker

    sessions = make_sessionmaker(make_engine(url))
    with sessions() as db:
        rows = [audit.as_dict(e) for e in audit.events(db, request_id)]
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    columns = ["at", "event", "actor", "request_id", "session_id", "system", "role", "ticket"]
    table = [[str(row[c] or "") for c in columns] for row in rows]
    widths = [
        max(len(c), *(len(r[i]) for r in table)) if table else len(c) for i, c in enumerate(columns)
    ]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0
