"""Shared fixtures: a fake Slack Web API server, a webhook target, a real PostgreSQL (session
scoped), and `bot`: the real app served over real HTTP on localhost, signed requests in."""

from __future__ import annotations

import atexit
import compileall
import contextlib
import functools
import io
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, NoReturn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from app import clock, text
from app.config import Settings
from app.context import AppContext
from app.db import transaction, upgrade
from app.jobs.expire import expire_due_sessions
from app.jobs.reminders import send_closeout_reminders
from app.models import AccessRequest, AccessSession, SessionState
from app.runtime import build_bot
from app.web import make_wsgi_app
from tests.blocks_helpers import offers
from tests.fakes.policy import ALICE, BOB, LEAD1, LEAD2, MALLORY, write_policy
from tests.fakes.postgres import PostgresServer, postgres_or_skip
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackSender, text_input
from tests.fakes.webhook_receiver import WebhookReceiver

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WEBHOOK_SECRET = "whsec-test-0123456789"
USERS = {
    ALICE: {"email": "alice@example.com", "name": "alice"},
    BOB: {"email": "bob@example.com", "name": "bob"},
    LEAD1: {"email": "lead1@example.com", "name": "lead1"},
    LEAD2: {"email": "lead2@example.com", "name": "lead2"},
    MALLORY: {"email": "mallory@example.com", "name": "mallory"},
}


# Modules whose tests change what every xdist worker shares (the installed distributions):
# all their tests go to one worker. (pytest-xdist's `xdist_group` mark would say this, but
# on pytest 9.2 `--dist loadgroup` silently stops grouping: pytest-xdist issue #1386.)
ONE_WORKER_MODULES = ("tests/test_provider_plugins.py",)


def pytest_configure(config: pytest.Config) -> None:
    """Once, before any worker starts: compile app/ to bytecode. The tests start `python -m
    app` and `serve` some 35 times, and where PYTHONDONTWRITEBYTECODE is set (it is on the
    machines here) each of them would otherwise compile every module from source again.
    And in every pytest process: write bytecode despite that variable (the processes the tests
    start still have it), so that pytest keeps the test modules it rewrote for its asserts,
    and Python the helpers in tests/: each xdist worker compiled all of them again in every run
    (about 2 of a worker's 4.5 s of CPU to collect)."""
    sys.dont_write_bytecode = False
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        compileall.compile_dir(Path(__file__).resolve().parents[1] / "app", quiet=1)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, test by test, except ONE_WORKER_MODULES, each kept whole."""
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerForSomeModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneWorkerForSomeModules(config, log)


def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll until check() returns something truthy (work after ack runs on Bolt's threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
def _forget_secrets_registered_by_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry of secrets (app.text) lives as long as the process, as it should in
    production; here one test's secret (say "x" * 16) must not mask the next test's text."""
    monkeypatch.setattr(text, "_secrets", text._secrets)


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Put the handlers, the root level and structlog back afterwards (for what configures
    logging: a command run in this process, a test of the logging set-up)."""
    import structlog

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that configure logging: logging as it was, afterwards."""
    with logging_restored():
        yield


@pytest.fixture(scope="session")
def slack_server() -> Iterator[FakeSlack]:
    with FakeSlack(users=USERS) as fake:
        yield fake


@pytest.fixture
def slack(slack_server: FakeSlack) -> FakeSlack:
    slack_server.clear()
    return slack_server


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    with WebhookReceiver(WEBHOOK_SECRET) as receiver:
        yield receiver


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = postgres_or_skip(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


_db_counter = itertools.count(1)


def _psycopg(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the real PostgreSQL server (DSN, psycopg 3 driver)."""
    return _psycopg(pg_server.create_database(f"bot_{next(_db_counter)}"))


def empty_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL to a new, empty database: a SQLite file in tmp_path, or (backend "postgres") a
    fresh database on the real PostgreSQL server."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


@pytest.fixture(scope="session")
def _pg_migrated_template(pg_server: PostgresServer) -> str:
    """A database migrated once per test session (per xdist worker), copied for each bot."""
    name = "bot_template"
    upgrade(_psycopg(pg_server.create_database(name)))  # its engine is disposed: no sessions
    return name


@pytest.fixture
def pg_migrated_database(pg_server: PostgresServer, _pg_migrated_template: str) -> str:
    """A fresh database already at the newest migration: a copy of the template, which
    PostgreSQL makes far faster than running the migrations again (the bot's own upgrade at
    start then finds nothing to do, as after a restart)."""
    name = f"bot_{next(_db_counter)}"
    return _psycopg(pg_server.create_database(name, template=_pg_migrated_template))


@functools.cache
def sqlite_migrated_template() -> Path:
    """A SQLite file migrated once per test process (per xdist worker), copied for each bot
    (the bot's own upgrade at start then finds nothing to do, as after a restart)."""
    directory = Path(tempfile.mkdtemp(prefix="prod-access-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "bot.db"
    upgrade(f"sqlite:///{path}")
    assert not path.with_name("bot.db-wal").exists(), "the template must be one file"
    return path


@pytest.fixture(scope="session")
def _sqlite_migrated_template() -> Path:
    return sqlite_migrated_template()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class BotHarness:
    """The bot's real WSGI app on a real local HTTP server; timers are run by the test."""

    def __init__(self, settings: Settings, slack: FakeSlack) -> None:
        self.bot = build_bot(settings)
        self.ctx: AppContext = self.bot.ctx
        self.slack = slack
        self.server = make_server(
            "127.0.0.1",
            0,
            make_wsgi_app(self.bot),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        # serve_forever's default poll interval (0.5 s) is how long shutdown() waits in stop():
        # half a second after every test that uses the bot
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/slack/events"
        self.send = SlackSender(self.url, SIGNING_SECRET, slack.response_url())

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.bot.later.shutdown()

    # --- time and timers ---
    def sweep(self) -> Any:
        return expire_due_sessions(self.ctx)

    def reminders(self) -> list[str]:
        return send_closeout_reminders(self.ctx)

    # --- reading state ---
    def request(self, request_id: str) -> AccessRequest:
        with transaction(self.ctx.db) as db:
            row = db.get(AccessRequest, request_id)
            assert row is not None
            row.approvals  # loaded now: tests read approved_by after the transaction  # noqa: B018
            return row

    def session_for(self, request_id: str) -> AccessSession | None:
        with transaction(self.ctx.db) as db:
            from sqlalchemy import select

            return db.scalars(
                select(AccessSession).where(AccessSession.request_id == request_id)
            ).first()

    def wait_session(self, request_id: str, state: str, timeout: float = 5.0) -> AccessSession:
        def check() -> AccessSession | None:
            session = self.session_for(request_id)
            return session if session is not None and session.state == state else None

        return eventually(check, timeout, f"session of {request_id} to be {state}")

    def latest_request_id(self) -> str:
        with transaction(self.ctx.db) as db:
            from sqlalchemy import select

            row = db.scalars(
                select(AccessRequest).order_by(AccessRequest.created_at.desc())
            ).first()
            assert row is not None
            return row.id

    def deny(self, request_id: str, user: str, reason: str = "") -> Any:
        """Click Deny on the card, wait for the reason modal, submit it; the submit's answer."""
        before = len(self.slack.calls_to("views.open"))
        self.send.click("deny_request", request_id, user)
        opened = self.slack.wait_for(
            "views.open",
            lambda a: (
                a["view"].get("callback_id") == "deny"
                and a["view"].get("private_metadata") == request_id
            ),
            count=1,
        )
        assert len(self.slack.calls_to("views.open")) > before
        values = {"deny_reason": text_input(reason, "deny_reason_input")}
        return self.send.submit(opened[-1]["view"], values, user)

    def quick_request(self, text: str, user: str = "U0BOB") -> str:
        """Send a quick-form request; wait for its card; return the request id."""
        answer = self.send.command(text, user)
        assert answer.status == 200, answer
        self.slack.wait_for(
            "chat.postMessage", lambda a: offers(a.get("blocks"), "approve_request")
        )
        return eventually(lambda: _card_ready(self), what="card ts stored")

    def granted(self, text: str, user: str = "U0BOB", approver: str = "U0LEAD1") -> AccessSession:
        """A quick-form request, approved on its card: the session once it is active."""
        request_id = self.quick_request(text, user)
        assert self.send.click("approve_request", request_id, approver).status == 200
        return self.wait_session(request_id, SessionState.active)


def _card_ready(harness: BotHarness) -> str | None:
    request_id = harness.latest_request_id()
    return request_id if harness.request(request_id).card_ts else None


def make_settings(
    tmp_path: Path, slack: FakeSlack, policy: Path, database_url: str | None = None
) -> Settings:
    """The bot's settings for a test; without `database_url`, tmp_path/bot.db, a copy of the
    migrated template unless the test put a database there itself."""
    if database_url is None and not (tmp_path / "bot.db").exists():
        shutil.copyfile(sqlite_migrated_template(), tmp_path / "bot.db")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-test-token",  # type: ignore[arg-type]
        slack_signing_secret=SIGNING_SECRET,  # type: ignore[arg-type]
        slack_api_url=slack.url,
        database_url=database_url or f"sqlite:///{tmp_path / 'bot.db'}",
        policy_file=str(policy),
        revoke_retry_base_seconds=1,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def bot(
    request: pytest.FixtureRequest, tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> Iterator[BotHarness]:
    """The bot with its own database on SQLite (one process) and on a real PostgreSQL."""
    if request.param == "postgres":
        database_url = request.getfixturevalue("pg_migrated_database")
    else:
        shutil.copyfile(request.getfixturevalue("_sqlite_migrated_template"), tmp_path / "bot.db")
        database_url = None
    yield from _bot(tmp_path, slack, webhook, database_url)


@pytest.fixture
def sqlite_bot(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    _sqlite_migrated_template: Path,
) -> Iterator[BotHarness]:
    """The bot on SQLite only, for tests that edit its database file behind its back."""
    shutil.copyfile(_sqlite_migrated_template, tmp_path / "bot.db")
    yield from _bot(tmp_path, slack, webhook, None)


def _bot(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, database_url: str | None
) -> Iterator[BotHarness]:
    """The harness on `database_url` (default: tmp_path/bot.db, which the caller has copied
    from the migrated template)."""
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    harness = BotHarness(make_settings(tmp_path, slack, policy, database_url), slack)
    yield harness
    harness.stop()


class CommandDidNotReturn(BaseException):
    """A command run by run_cli_here went on where it should have returned: it outlived its time
    limit (SIGALRM, in the main thread) or tried to fork this process. A BaseException, so that
    no `except Exception` in the command turns it into an answer."""


@contextlib.contextmanager
def _as_if_its_own_process(timeout: float) -> Iterator[list[str]]:
    """What a command run in this process must not leave behind, or hang on, that a process of
    its own would take with it when it exits: the signal handlers it installs (serve's SIGTERM
    and SIGHUP, gunicorn's) are put back; it may not fork this pytest process (gunicorn forks
    its worker once serve is past its checks: a start that should have been refused); after
    `timeout` seconds it is interrupted. And what such a process would print on stderr is on
    stderr here too: a warning (Python's default filters), a library's log line before the
    command sets up logging (logging's last resort), not in pytest's capture. Yields the list
    of what went wrong (empty if nothing did), filled even if the command caught the
    CommandDidNotReturn raised in it."""
    handlers = {signum: signal.getsignal(signum) for signum in signal.valid_signals()}
    wrong: list[str] = []
    root = logging.getLogger()  # put back by logging_restored
    root.handlers[:] = []
    root.setLevel(logging.WARNING)

    def stop(why: str) -> NoReturn:
        wrong.append(why)
        raise CommandDidNotReturn(why)

    def no_fork() -> int:
        stop("it tried to fork (to serve?) instead of returning")

    def timed_out(signum: int, frame: object) -> None:
        stop(f"it did not finish within {timeout:g} s")

    def show_on_stderr(message: Any, category: Any, filename: str, lineno: int, *_: Any) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))

    real_fork, os.fork = os.fork, no_fork
    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for hidden in (
                DeprecationWarning,
                PendingDeprecationWarning,
                ImportWarning,
                ResourceWarning,
            ):
                warnings.simplefilter("ignore", hidden)
            warnings.showwarning = show_on_stderr
            yield wrong
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.fork = real_fork
        for signum, handler in handlers.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)


def run_cli_here(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`prod-access <args>` run by app.cli.main in this process, as `run_cli` runs it in a new
    one: the environment is exactly `env`, the working directory `cwd`, the output captured;
    logging and signal handlers are put back afterwards, and a command still running after
    `timeout` seconds (as `run_cli`'s) fails the test. For the many runs whose point is what the
    command says, not how a process starts (each new process costs about a second of CPU to
    import the app): `serve` refusing to start included, since a refused start returns before
    it serves. Tests of the process itself (serving, exit on a signal, the real stderr) use
    `run_cli` or tests/fakes/serve.py."""
    from app.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with (
            logging_restored(),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _as_if_its_own_process(timeout) as wrong,
        ):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's answer to a bad command line
                code = exc.code if isinstance(exc.code, int) else 2
    except CommandDidNotReturn:
        pass  # said below
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    if wrong:
        raise AssertionError(f"prod-access {' '.join(args)}: {wrong[0]}; stderr:\n{err.getvalue()}")
    return subprocess.CompletedProcess(["prod-access", *args], code, out.getvalue(), err.getvalue())


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app <args>` as a user would run it, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


__all__ = ["ALICE", "BOB", "LEAD1", "LEAD2", "MALLORY", "BotHarness", "eventually", "write_policy"]
