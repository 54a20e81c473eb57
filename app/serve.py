"""`prod-access serve`: find every mistake that can be found before starting, then serve Slack
(HTTP under gunicorn, or Socket Mode).

Rules it relies on:
- A start that cannot work stops before it changes anything, with exit status 2 and lines, not
  a traceback: first every problem `prod-access check` would show without connecting anywhere
  but the database (app.doctor.startup_problems), one line each, then a line pointing to
  `prod-access check` for the connections; then Slack's auth.test with the bot token, whose
  failure is one line naming SLACK_BOT_TOKEN, or SLACK_API_URL and the URL. Only then is the
  database created or migrated.
- Socket Mode's app-level token is first used when the connection opens, after migrations; a
  refusal there is one line naming SLACK_APP_TOKEN, and the SQLite file this start created is
  removed. A database that existed before the start is never removed, and nothing is removed
  once the bot serves.
- The mode: `--http` or `--socket`, else Socket Mode when SLACK_APP_TOKEN is set, else HTTP.
- SIGHUP reloads the policy without a restart (app/policy_reload.py): in Socket Mode here; under
  gunicorn the master hands it to its worker (app/web.py).
- In Socket Mode with a policy that uses step_up, the browser's pages (/step-up/…, /healthz)
  are served on $PORT by app.web.BrowserServer, started before the connection opens; so are
  the incident webhooks (POST /webhooks/…) when PAGERDUTY_WEBHOOK_SECRET or
  INCIDENT_IO_WEBHOOK_SECRET is set.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from app.web import BrowserServer

from app import incident_webhooks
from app.config import Settings
from app.doctor import startup_problems
from app.policy_reload import reload_in_background
from app.runtime import Bot, build_bot, hand_over_quickly
from app.slack import reach
from app.text import short

CHECK_HINT = "run `prod-access check` to test connections"
#: apps.connections.open errors that mean the app-level token itself is wrong.
REFUSED_APP_TOKEN = (
    "invalid_auth",
    "not_authed",
    "not_allowed_token_type",
    "token_revoked",
    "account_inactive",
)


class StartFailed(Exception):
    """The bot cannot start; the message is the one line that says what to fix."""


def serve(*, socket: bool | None) -> int:
    """Check, then serve until stopped (`socket` None: the mode the settings imply). Exit
    status 2, with lines on stderr, when the start fails."""
    found = startup_problems(socket=socket)
    if found.problems:
        for problem in found.problems:
            print(f"prod-access: {problem}", file=sys.stderr)
        print(CHECK_HINT, file=sys.stderr)
        return 2
    try:
        return _start(found.settings, socket=found.socket)
    except StartFailed as exc:
        print(f"prod-access: {exc}", file=sys.stderr)
        return 2


def _start(settings: Settings, *, socket: bool) -> int:
    bot_name, detail = reach.auth_test(reach.client_for(settings))
    if bot_name is None:
        raise StartFailed(detail)
    if socket:
        assert settings.slack_app_token is not None  # startup_problems checked it
        return _serve_socket(settings, settings.slack_app_token.get_secret_value())
    from app.web import GunicornServer, make_wsgi_app

    with removed_on_failure(settings.database_url):
        bot = build_bot(settings, socket=False)
    GunicornServer(make_wsgi_app(bot), bot, port=settings.port, threads=settings.web_threads).run()
    return 0


def _serve_socket(settings: Settings, app_token: str) -> int:
    """Socket Mode until SIGTERM/SIGINT, then stop in order: no new events, finish the work
    already acknowledged, stop the timers."""
    stop = threading.Event()
    with removed_on_failure(settings.database_url):
        bot = build_bot(settings, socket=True)
        handler = SocketModeHandler(bot.bolt, app_token)

        def on_signal(*_: object) -> None:
            # The timers pause at once (no new revoke starts); the rest stops in order below.
            bot.stop_taking_work()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        signal.signal(signal.SIGHUP, lambda *_: reload_in_background(bot.ctx))
        browser = _browser_server(bot, settings)
        hand_over_quickly()
        bot.start_timers()
        try:
            _connect(handler, settings)
        except BaseException:
            handler.close()
            if browser is not None:
                browser.stop()
            bot.stop()
            raise
    try:
        # Timed waits: the kernel may hand SIGTERM to any thread, and Python runs the handler
        # in the main thread only once it runs again; an untimed wait never would.
        while not stop.wait(timeout=0.5):
            pass
    finally:
        handler.close()
        if browser is not None:
            browser.stop()
        bot.stop()
    return 0


def _browser_server(bot: Bot, settings: Settings) -> BrowserServer | None:
    """Socket Mode's HTTP server for step-up logins (when the policy uses step_up) and the
    incident webhooks (when a webhook secret is set)."""
    if not (bot.ctx.policy.uses_step_up() or incident_webhooks.configured(settings)):
        return None
    from app.web import BrowserServer

    try:
        return BrowserServer(bot, settings.port).start()
    except OSError as exc:
        raise StartFailed(
            f"cannot listen on PORT {settings.port} for step-up logins and webhooks: {exc.strerror}"
        ) from None


def _connect(handler: SocketModeHandler, settings: Settings) -> None:
    """Open the first Socket Mode connection; a failure is a StartFailed that names the
    setting. slack_sdk logs the same failure first; those lines are dropped, ours says it."""
    logger = handler.client.logger
    quiet = _DropAll()
    logger.addFilter(quiet)
    try:
        handler.connect()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        if error in REFUSED_APP_TOKEN:
            raise StartFailed(
                f"Slack answered {error} to apps.connections.open: check SLACK_APP_TOKEN "
                "(an app-level token, xapp-…, with connections:write)"
            ) from None
        raise StartFailed(
            f"Slack answered {error} to apps.connections.open: "
            "see https://api.slack.com/methods/apps.connections.open"
        ) from None
    except Exception as exc:  # refused, DNS, TLS, timeout, a WebSocket that never opened
        raise StartFailed(
            f"Socket Mode could not connect: {short(exc, 160)}: check SLACK_API_URL "
            f"({settings.slack_api_url}) and the network"
        ) from None
    finally:
        logger.removeFilter(quiet)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def removed_on_failure(database_url: str) -> Iterator[None]:
    """Remove the SQLite database file (and its WAL files) that the block created, when the
    block fails: a failed first start leaves no empty database behind. A file that existed
    before the block is never touched; other databases are left alone."""
    url = make_url(database_url)
    path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
    created = path is not None and path.name != ":memory:" and not path.exists()
    try:
        yield
    except BaseException:
        if created and path is not None:
            for leftover in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                leftover.unlink(missing_ok=True)
        raise
