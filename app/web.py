"""The HTTP app for production (WSGI, served by gunicorn's threaded workers):
POST /slack/events → Bolt (signature checked there), GET /healthz → liveness + database check,
GET /metrics → Prometheus text; with METRICS_TOKEN set, only for `Authorization: Bearer <it>`
(compared in constant time), else 401. Without it /metrics is open to whoever reaches the port.
GET /step-up/… → the browser's side of step-up approvals (app/step_up_pages.py).
POST /webhooks/pagerduty, /webhooks/incident-io → resolved incidents (app/incident_webhooks.py).

Socket Mode has no HTTP server of its own, but a step-up login ends in the browser, which must
reach the bot: when the policy uses step_up, `serve --socket` also runs `BrowserServer`, a small
threaded WSGI server (the standard library's) in the same process, serving only /step-up/… and
/healthz on $PORT. In the same process, because the login finishes with the same operations,
database and notifier as a click; threaded, so a slow identity provider holds up one page only.

Why sync Bolt under gunicorn gthread and not the async adapter: our operations, SQLAlchemy and
providers are synchronous; Bolt's sync App behind an async adapter handles one request at a
time, while gthread serves requests concurrently on threads (see bench/ for the figures).

SIGHUP reloads the policy in the worker without a restart (app/policy_reload.py): the master
hands the signal on instead of replacing its workers (`_PolicyReloadingArbiter`), so the timers,
connections and requests in flight go on.

SIGTERM stops gracefully: the worker pauses the timers at once (a session that falls due now
is left to the next process), stops accepting connections, answers the requests in flight, and
on its way out (`worker_exit`) lets the timer run in progress finish (a provider call in flight
completes and is recorded), does the acknowledged work, and sends or keeps queued notices.
"""

from __future__ import annotations

import gc
import hmac
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from app import metrics
from app.audit_sinks.targets import configured
from app.db import reading
from app.incident_webhooks import webhook_route
from app.policy_reload import reload_in_background
from app.runtime import Bot, hand_over_quickly
from app.step_up_pages import step_up_route

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
log = structlog.get_logger(__name__)


def make_wsgi_app(bot: Bot) -> WSGIApp:
    slack = SlackRequestHandler(bot.bolt, path="/slack/events")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            return healthz(bot, start_response)
        browser = step_up_route(bot.ctx, environ, start_response)
        if browser is not None:
            return browser
        hooked = webhook_route(bot, environ, start_response)
        if hooked is not None:
            return hooked
        if path == "/metrics" and environ.get("REQUEST_METHOD") == "GET":
            if not may_scrape(environ.get("HTTP_AUTHORIZATION"), bot.ctx.settings.metrics_token):
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
                )
                return [b"401 Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n"]
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [metrics.render(bot.ctx.db, configured(bot.ctx.settings))]
        with bot.later.answering():  # work that can wait waits for this answer
            return slack(environ, start_response)

    return app


def healthz(bot: Bot, start_response: Callable[..., Any]) -> list[bytes]:
    """GET /healthz: 200 while the database answers, else 503 with the error's type."""
    body: dict[str, object]
    try:
        with reading(bot.ctx.db) as db:
            db.execute(text("SELECT 1"))
        status, body = "200 OK", {"ok": True}
    except Exception as exc:
        status, body = "503 Service Unavailable", {"ok": False, "error": type(exc).__name__}
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [payload]


def make_browser_app(bot: Bot) -> WSGIApp:
    """Socket Mode's HTTP app: /step-up/…, /healthz and the incident webhooks, nothing else."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            return healthz(bot, start_response)
        browser = step_up_route(bot.ctx, environ, start_response)
        if browser is not None:
            return browser
        hooked = webhook_route(bot, environ, start_response)
        if hooked is not None:
            return hooked
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"404 Not Found\n"]

    return app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a request line would carry a step-up link's token."""


class BrowserServer:
    """`make_browser_app` on 0.0.0.0:`port` in a daemon thread, for Socket Mode (see above)."""

    def __init__(self, bot: Bot, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        self._server = make_server(
            host,
            port,
            make_browser_app(bot),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="browser-http", daemon=True
        )

    def start(self) -> BrowserServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def may_scrape(authorization: str | None, token: SecretStr | None) -> bool:
    """Whether an Authorization header opens /metrics: always without a token, else only
    `Bearer <token>`. hmac.compare_digest takes as long wherever the first wrong byte is, so
    the answer's timing does not reveal how much of a guess was right."""
    if token is None:
        return True
    scheme, _, given = (authorization or "").strip().partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


class _AppLogs(glogging.Logger):
    """gunicorn's own lines go through the app's logging: the same format (JSON lines in
    production) and the same masking."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers[:] = []
            log.propagate = True


def _start_worker(bot: Bot) -> None:
    """In the worker, before it serves: run the timers, and make SIGTERM stop them at once
    (gunicorn's own handler then stops the worker gracefully)."""
    bot.start_timers()
    # What start-up made (policy, Bolt, SQLAlchemy's compiled statements …) lives as long as the
    # process: moved out of the garbage collector's sight, a full collection no longer walks it
    # (under a burst of requests that cut the p99 ack from 62 to 47 ms, bench/ack_latency.py).
    gc.collect()
    gc.freeze()
    hand_over_quickly()
    settings = bot.ctx.settings
    log.info(  # what this process serves, for the operator (the DSN's password is masked)
        "serving",
        port=settings.port,
        threads=settings.web_threads,
        database=settings.database_url,
        policy=settings.policy_file,
        systems=sorted(bot.ctx.providers),
    )
    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        bot.stop_taking_work()
        if callable(gunicorn_handler):
            gunicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    # gunicorn leaves SIGHUP at its default (exit) in a worker; here it reloads the policy.
    signal.signal(signal.SIGHUP, lambda *_: reload_in_background(bot.ctx))


class GunicornServer(BaseApplication):
    """gunicorn, configured in code: one worker process (the timers live in it) with threads."""

    def __init__(self, wsgi: WSGIApp, bot: Bot, port: int, threads: int) -> None:
        self.application, self.bot, self.port, self.threads = wsgi, bot, port, threads
        super().__init__()

    def load_config(self) -> None:
        bot = self.bot
        self.cfg.set("bind", f"0.0.0.0:{self.port}")
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", self.threads)
        self.cfg.set("timeout", 60)
        self.cfg.set("graceful_timeout", 30)
        self.cfg.set("accesslog", None)
        self.cfg.set("logger_class", _AppLogs)
        self.cfg.set("loglevel", bot.ctx.settings.log_level)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn ≥ 25: no admin socket
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("post_worker_init", lambda worker: _start_worker(bot))
        self.cfg.set("worker_exit", lambda server, worker: bot.stop())

    def load(self) -> WSGIApp:
        return self.application

    def run(self) -> None:
        try:
            _PolicyReloadingArbiter(self).run()
        except RuntimeError as exc:  # as gunicorn's own run() says it
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)


class _PolicyReloadingArbiter(Arbiter):
    """gunicorn's master, except that SIGHUP is handed to the workers, which reload the policy
    in place. gunicorn's own SIGHUP starts new workers from the app built before the fork: the
    old policy, with the timers restarted, for nothing."""

    def handle_hup(self) -> None:
        self.log.info("SIGHUP: the worker reloads the policy")
        self.kill_workers(signal.SIGHUP)
