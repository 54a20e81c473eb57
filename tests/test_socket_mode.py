"""The real `prod-access serve --socket` process (and `serve` with SLACK_APP_TOKEN set) over
Socket Mode, with no Slack and no internet.

Slack's side is two local servers: FakeSlack answers `apps.connections.open` (app-level token
only) with the URL of a WebSocket server run here on 127.0.0.1, which plays Slack's Socket
Mode end: it says `hello`, sends envelopes shaped like Slack's (as in bolt-python's Socket
Mode tests) and reads the bot's acks, which
must carry the same `envelope_id`. No signing secret is set: Socket Mode must not need one.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.blocks_helpers import offers
from tests.conftest import BOB, LEAD1, WEBHOOK_SECRET, eventually, run_cli_here, write_policy
from tests.fakes.serve import free_port
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackSender
from tests.fakes.webhook_receiver import WebhookReceiver

APP_TOKEN = "xapp-1-test"
CONNECT_TIMEOUT = 30.0  # start-up: imports, migrations, apps.connections.open, handshake
ACK_TIMEOUT = 5.0
WORK_TIMEOUT = 10.0  # what runs after the ack (the card, the grant)
SETTLE = 0.5  # no new connection for this long: the set of connections is settled


class Link:
    """One WebSocket connection from the bot, as Slack's end sees it: every text frame the bot
    sends lands in `inbox`; the test sends hello and envelopes."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.path = connection.request.path if connection.request else ""
        self.inbox: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  # what the bot sent that no ack wait has claimed
        self.closed = threading.Event()

    def pump(self) -> None:
        """Runs in the server's handler thread until the connection closes."""
        with contextlib.suppress(ConnectionClosed):
            for message in self.connection:
                self.inbox.put(message if isinstance(message, str) else message.decode())
        self.closed.set()

    def send(self, message: dict[str, Any]) -> None:
        self.connection.send(json.dumps(message))

    def hello(self) -> None:
        self.send(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 3600,
                },
                "connection_info": {"app_id": "A0PRODACCESS"},
            }
        )

    def envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool
    ) -> str:
        """Send one envelope as Slack does; return its envelope_id."""
        envelope_id = str(uuid.uuid4())
        self.send(
            {
                "envelope_id": envelope_id,
                "payload": payload,
                "type": kind,
                "accepts_response_payload": accepts_response_payload,
            }
        )
        return envelope_id

    def ack_for(self, envelope_id: str, timeout: float = ACK_TIMEOUT) -> dict[str, Any]:
        """The bot's ack of `envelope_id`, or AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for raw in list(self.seen):
            if _envelope_id(raw) == envelope_id:
                self.seen.remove(raw)
                return json.loads(raw)
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if _envelope_id(raw) == envelope_id:
                return json.loads(raw)
            self.seen.append(raw)
        raise AssertionError(
            f"no ack for envelope {envelope_id} within {timeout}s; the bot sent: {self.seen!r}"
        )


def _envelope_id(raw: str) -> str | None:
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return message.get("envelope_id") if isinstance(message, dict) else None


class SocketModeServer:
    """Slack's Socket Mode end on ws://127.0.0.1:<free port>: each connection becomes a Link."""

    def __init__(self) -> None:
        self.links: queue.Queue[Link] = queue.Queue()
        self.ticket = uuid.uuid4().hex
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SocketModeServer:
        self._server = serve(
            self._handle,
            "127.0.0.1",
            0,
            compression=None,
            ping_interval=None,  # the bot pings us; Slack's own pings are not what is tested
            open_timeout=5,
            close_timeout=2,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-socket-mode", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def url(self) -> str:
        """What apps.connections.open hands out; a ticket, as Slack's URLs carry one."""
        assert self._server is not None
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link?ticket={self.ticket}"

    def _handle(self, connection: ServerConnection) -> None:
        link = Link(connection)
        self.links.put(link)
        link.pump()


class BotProcess:
    """`python -m app <args>` in tmp_path, output to a log file that failures quote."""

    def __init__(self, tmp_path: Path, env: dict[str, str], args: list[str]) -> None:
        self.log = tmp_path / f"socket-{len(list(tmp_path.glob('socket-*.log')))}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", *args],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log_text(self) -> str:
        if not self.log.exists():  # e.g. another pytest run pruned this run's basetemp
            return f"(the log file {self.log} is gone)"
        return self.log.read_text(errors="replace")

    def wait_link(self, server: SocketModeServer, timeout: float = CONNECT_TIMEOUT) -> Link:
        """The bot's live connection: wait until no new one has come for SETTLE seconds and
        answer on the newest still open (a client may replace a connection it just made)."""
        deadline = time.monotonic() + timeout
        links: list[Link] = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the bot exited with {self.proc.returncode}")
            try:
                links.append(server.links.get(timeout=SETTLE))
                continue
            except queue.Empty:
                pass
            live = [link for link in links if not link.closed.is_set()]
            if live:
                return live[-1]
        raise AssertionError(f"the bot did not connect to {server.url} within {timeout}s")

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """Any failure inside also shows the bot's log."""
        try:
            yield
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- bot log ({self.log}) ---\n{self.log_text()}") from exc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def socket_server(slack: FakeSlack) -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    slack.socket_mode_url = server.url
    yield server
    slack.socket_mode_url = None
    server.stop()


@pytest.fixture
def env(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> dict[str, str]:
    """Like test_serve's, with the app-level token and without SLACK_SIGNING_SECRET or PORT."""
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    clean.pop("PORT", None)
    return {
        **clean,
        "SLACK_BOT_TOKEN": "xoxb-socket-test",
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'socket.db'}",
        "POLICY_FILE": str(policy),
        "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_FORMAT": "json",
    }


@pytest.fixture
def start_bot(tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start the bot as a subprocess; every one started is stopped (SIGTERM, then SIGKILL)."""
    started: list[BotProcess] = []

    def start(env: dict[str, str], *args: str) -> BotProcess:
        bot = BotProcess(tmp_path, env, list(args))
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()


def _one(env: dict[str, str], query: str, *args: object) -> object:
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        row = conn.execute(query, args).fetchone()
    return row[0] if row else None


def _command(text: str, user: str, response_url: str) -> dict[str, Any]:
    """A slash_commands payload: the same fields as the HTTP form, already parsed."""
    fields = SlackSender("", "", response_url).command_fields(text, user)
    return {**fields, "is_enterprise_install": "false"}


def _click(action_id: str, value: str, user: str, message_ts: str, response_url: str) -> dict:
    """A block_actions payload: a button on the approval card was clicked."""
    n = uuid.uuid4().hex[:8]
    return {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0PRODACCESS",
        "token": "legacy-verification-token",
        "trigger_id": f"{n}.{n}.trigger",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": "C0APPROVALS",
            "is_ephemeral": False,
        },
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "blk",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _ack_text(ack: dict[str, Any]) -> str:
    payload = ack.get("payload") or {}
    return str(payload.get("text", ""))


@pytest.mark.parametrize(
    "args", [["serve", "--socket"], ["serve"]], ids=["socket-flag", "app-token-set"]
)
def test_serve_over_socket_mode_acks_and_does_the_work_after(
    args: list[str],
    env: dict[str, str],
    slack: FakeSlack,
    webhook: WebhookReceiver,
    socket_server: SocketModeServer,
    start_bot: Callable[..., BotProcess],
) -> None:
    bot = start_bot(env, *args)
    with bot.explained():
        link = bot.wait_link(socket_server)
        opened = [c for c in slack.calls if c.method == "apps.connections.open"]
        assert opened and opened[0].headers.get("authorization") == f"Bearer {APP_TOKEN}"
        assert link.path == f"/link?ticket={socket_server.ticket}"
        link.hello()

        # help: the answer is the ack itself
        envelope_id = link.envelope(
            "slash_commands",
            _command("help", BOB, slack.response_url()),
            accepts_response_payload=True,
        )
        ack = link.ack_for(envelope_id)
        assert ack["envelope_id"] == envelope_id
        assert "orders-api" in _ack_text(ack), ack

        # quick-form request: acked at once, the card is posted after the ack
        envelope_id = link.envelope(
            "slash_commands",
            _command("orders-api read 15m PAY-1 check logs", BOB, slack.response_url()),
            accepts_response_payload=True,
        )
        ack = link.ack_for(envelope_id)
        text = _ack_text(ack)
        assert "on its way to the approvers" in text, ack
        request_id = text.split("`")[1]
        slack.wait_for(
            "chat.postMessage",
            lambda a: (
                a.get("channel") == "C0APPROVALS" and offers(a.get("blocks"), "approve_request")
            ),
            timeout=WORK_TIMEOUT,
        )
        card_ts = eventually(
            lambda: _one(env, "SELECT card_ts FROM access_requests WHERE id=?", request_id),
            timeout=WORK_TIMEOUT,
            what="card ts stored",
        )

        # an approver clicks Approve on the card: the grant goes out, signed
        envelope_id = link.envelope(
            "interactive",
            _click("approve_request", request_id, LEAD1, str(card_ts), slack.response_url()),
            accepts_response_payload=False,
        )
        ack = link.ack_for(envelope_id)
        assert ack["envelope_id"] == envelope_id and not ack.get("payload"), ack
        grant = webhook.wait_for(1, action="grant", timeout=WORK_TIMEOUT)[0]
        assert grant.signature_valid
        assert grant.body["request_id"] == request_id
        assert grant.body["grant"] == "orders-viewer"
        assert grant.body["user"]["email"] == "bob@example.com"
        assert grant.body["ticket"] == "PAY-1"
        eventually(
            lambda: (
                _one(env, "SELECT state FROM access_sessions WHERE request_id=?", request_id)
                == "active"
            ),
            timeout=WORK_TIMEOUT,
            what="session active",
        )
        assert bot.proc.poll() is None, "the bot stopped while connected"


def test_an_event_sent_again_over_socket_mode_is_acked_and_handled_once(
    env: dict[str, str],
    slack: FakeSlack,
    socket_server: SocketModeServer,
    start_bot: Callable[..., BotProcess],
) -> None:
    """Slack sends an event again (same event_id, a new envelope) when it missed the ack."""
    event = {
        "token": "legacy-verification-token",
        "team_id": "T0TEAM",
        "api_app_id": "A0PRODACCESS",
        "type": "event_callback",
        "event_id": "Ev0HOME1",
        "event_time": int(time.time()),
        "event": {
            "type": "app_home_opened",
            "user": BOB,
            "channel": "D0BOB",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
    }
    bot = start_bot(env, "serve", "--socket")
    with bot.explained():
        link = bot.wait_link(socket_server)
        link.hello()
        first = link.envelope("events_api", event, accepts_response_payload=False)
        assert link.ack_for(first)["envelope_id"] == first
        slack.wait_for("views.publish", lambda a: a["user_id"] == BOB, timeout=WORK_TIMEOUT)

        again = link.envelope("events_api", event, accepts_response_payload=False)
        assert link.ack_for(again)["envelope_id"] == again
        time.sleep(SETTLE)
        assert len(slack.calls_to("views.publish")) == 1
        assert "slack_event_repeated" in bot.log_text()


def test_slack_asking_to_reconnect_gets_a_new_connection_that_works(
    env: dict[str, str],
    slack: FakeSlack,
    socket_server: SocketModeServer,
    start_bot: Callable[..., BotProcess],
) -> None:
    """Slack sends `disconnect` before it retires a connection (every few hours); the bot must
    open a new one through apps.connections.open and go on answering there."""
    bot = start_bot(env, "serve", "--socket")
    with bot.explained():
        first = bot.wait_link(socket_server)
        first.hello()
        first.send(
            {
                "type": "disconnect",
                "reason": "refresh_requested",
                "debug_info": {"host": "applink-fake"},
            }
        )
        second = bot.wait_link(socket_server, timeout=WORK_TIMEOUT)
        assert len(slack.calls_to("apps.connections.open")) == 2
        second.hello()
        envelope_id = second.envelope(
            "slash_commands",
            _command("help", BOB, slack.response_url()),
            accepts_response_payload=True,
        )
        assert "orders-api" in _ack_text(second.ack_for(envelope_id))
        assert bot.proc.poll() is None, "the bot stopped after reconnecting"


def test_socket_mode_stops_cleanly_on_sigterm(
    env: dict[str, str], socket_server: SocketModeServer, start_bot: Callable[..., BotProcess]
) -> None:
    bot = start_bot(env, "serve", "--socket")
    with bot.explained():
        bot.wait_link(socket_server).hello()
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.proc.wait(timeout=20) == 0
        assert "Traceback" not in bot.log_text()


def test_serve_socket_without_app_token_says_which_variable(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env = {k: v for k, v in env.items() if k != "SLACK_APP_TOKEN"}
    result = run_cli_here(tmp_path, env, "serve", "--socket")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "prod-access: SLACK_APP_TOKEN is not set (see .env.example)",
        "run `prod-access check` to test connections",
    ]


@pytest.mark.parametrize(
    ("method", "error", "setting"),
    [
        ("apps.connections.open", "invalid_auth", "SLACK_APP_TOKEN"),
        ("apps.connections.open", "not_allowed_token_type", "SLACK_APP_TOKEN"),
        ("auth.test", "invalid_auth", "SLACK_BOT_TOKEN"),
    ],
)
def test_a_token_slack_refuses_stops_socket_mode_with_one_line_and_no_database(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, method: str, error: str, setting: str
) -> None:
    slack.fail(method, error)
    env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    result = run_cli_here(tmp_path, env, "serve")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"prod-access: Slack answered {error}")
    assert f"check {setting}" in line
    assert APP_TOKEN not in result.stderr
    assert not (tmp_path / "prod-access.db").exists()


def test_a_failed_socket_mode_start_leaves_a_database_that_was_there(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    """Only the file this start created is removed: never one that holds sessions."""
    assert run_cli_here(tmp_path, env, "db", "upgrade").returncode == 0
    database = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
    before = database.stat().st_size
    slack.fail("apps.connections.open", "invalid_auth")
    result = run_cli_here(tmp_path, env, "serve", "--socket")
    assert result.returncode == 2, result.stderr
    assert database.exists() and database.stat().st_size >= before


def test_socket_mode_with_slack_unreachable_is_one_line_naming_slack_api_url(
    tmp_path: Path, env: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/"
    result = run_cli_here(tmp_path, {**env, "SLACK_API_URL": url}, "serve", "--socket")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"prod-access: Slack unreachable at {url}: ")
    assert line.endswith("check SLACK_API_URL and the network")
