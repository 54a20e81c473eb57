"""How fast does the bot ack a `/prod-access` quick request, compared with a bare Bolt app?

Slack gives an app 3 seconds to ack a slash command; the bot acks before it stores the request
and posts the approval card (that work runs on Bolt's listener threads after the ack). This
script measures what a requester waits for: the time from sending a signed slash-command POST
to having the full HTTP answer, under concurrent load, for

- bot:  the real bot, started exactly as production starts it (`prod-access serve --http`:
        gunicorn, one worker, gthread, WEB_THREADS threads), with SQLite and a webhook system;
- bare: bench/bare_bolt_app.py, a Bolt `App` whose only listener calls `ack()`, served by
        gunicorn the same way (1 worker, gthread, the same thread count).

Both talk to a fake Slack Web API (tests/fakes/slack_api.py) started in this process, so the
bot's post-ack work (chat.postMessage of the card, the requester's DM) really happens; after a
short drain the script prints how many cards reached the approver channel.

Method: the two servers are started first and both must answer GET /healthz with 200. Then the
targets are loaded one after the other, bare first, then bot (so the bot's post-ack backlog
cannot spill into the baseline). Per target: `--concurrency` client threads, each with one
persistent HTTP/1.1 connection (keep-alive), send a warm-up (not counted) and then `--requests`
v0-signed slash commands (`orders-api read 15m PAY-<n> bench <n>`, from rotating requester ids).
Latency is send-to-full-response per request. Every bot answer must be 200 and say
"on its way to the approvers"; every bare answer must be 200; anything else is an error.
Timing is reported, never asserted; the target is bot p99 <= 1.5x bare p99.

Caveat: the client threads and the fake Slack share this process (and its GIL), and all three
processes share the machine's CPUs, so during the bot phase the fake Slack serving the bot's
post-ack calls competes with the load generator. That cost is part of the bot's figures.

Run from the repo root (only localhost traffic; the run stops by itself):

    python bench/ack_latency.py --quick          # smoke run: 200 requests per target
    python bench/ack_latency.py                  # 2000 requests per target, concurrency 20
    python bench/ack_latency.py --requests 5000 --concurrency 40 --threads 16

Exit status: 0 when every request got the expected answer, 1 when some did not, 2 when a
server could not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.policy import write_policy  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_requests import SlackSender, sign  # noqa: E402
from tests.fakes.webhook_receiver import WebhookReceiver  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-7d1c4a9e0b"
WEBHOOK_SECRET = "whsec-bench-0123456789"
BOT_TOKEN = "xoxb-bench"
APPROVER_CHANNEL = "C0APPROVALS"
APPROVERS = ("U0APPROVER1", "U0APPROVER2")
REQUESTERS = tuple(f"U0BENCH{i:04d}" for i in range(100))
BOT_OK_TEXT = "on its way to the approvers"

STARTUP_TIMEOUT = 60.0  # seconds for a server to answer /healthz
REQUEST_TIMEOUT = 10.0  # seconds per HTTP request (Slack itself gives up after 3)
STOP_TIMEOUT = 35.0  # gunicorn's graceful_timeout is 30 s; SIGKILL after this
SHOWN_ERRORS = 10

Check = Callable[[int, bytes], str | None]


# --- setup ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_users() -> dict[str, dict]:
    return {
        uid: {"email": f"{uid.lower()}@example.com", "name": uid.lower()}
        for uid in (*REQUESTERS, *APPROVERS)
    }


def prod_access_executable() -> str:
    beside = Path(sys.executable).parent / "prod-access"
    found = str(beside) if beside.exists() else shutil.which("prod-access")
    if not found:
        raise SystemExit("prod-access is not installed (pip install -e . in the venv)")
    return found


class StartupError(Exception):
    pass


class Server:
    """A gunicorn subprocess in its own process group, logging to a file."""

    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, port: int, log: Path
    ) -> None:
        self.name, self.cmd, self.env, self.cwd = name, cmd, env, cwd
        self.port, self.log = port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: the worker can be killed with it
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> float:
        """Seconds from start() until GET /healthz answered 200; StartupError if it never does."""
        assert self.proc is not None
        while time.monotonic() - self.started < timeout:
            if self.proc.poll() is not None:
                raise StartupError(
                    f"{self.name} exited with status {self.proc.returncode}:\n{self.log_tail()}"
                )
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return time.monotonic() - self.started
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise StartupError(
            f"{self.name} did not answer /healthz in {timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM to gunicorn's arbiter (graceful), then SIGKILL to its whole process group."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.proc = None


# --- load ----------------------------------------------------------------------------------


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests only
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    connections: int = 0
    wall: float = 0.0


def check_bot(status: int, body: bytes) -> str | None:
    text = body.decode("utf-8", errors="replace")
    if status != 200 or BOT_OK_TEXT not in text:
        return f"HTTP {status}: {text[:200]!r}"
    return None


def check_bare(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    return None


class Load:
    """`concurrency` threads, one keep-alive connection each, sharing a request counter."""

    def __init__(
        self, port: int, concurrency: int, sender: SlackSender, check: Check, deadline: float
    ) -> None:
        self.port, self.concurrency, self.sender, self.check = port, concurrency, sender, check
        self.deadline = deadline
        self.serial = 0  # request number across warm-up and measurement (tickets, requesters)
        self._lock = threading.Lock()

    def run(self, count: int, rate: float | None = None) -> Result:
        """Closed loop (each client sends again as soon as answered) or, with `rate`, open loop:
        request i is due at start + i/rate whatever the answers, and its latency counts from
        when it was due (so a server that falls behind is not flattered)."""
        result = Result()
        remaining = [count]
        first = time.perf_counter() + 0.05

        def take() -> tuple[int, float | None] | None:
            with self._lock:
                if remaining[0] <= 0 or time.monotonic() > self.deadline:
                    return None
                index = count - remaining[0]
                remaining[0] -= 1
                self.serial += 1
                return self.serial, (first + index / rate) if rate else None

        def worker() -> None:
            conn: http.client.HTTPConnection | None = None
            while (job := take()) is not None:
                n, due = job
                if due is not None:
                    time.sleep(max(0.0, due - time.perf_counter()))
                if conn is None:
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT
                    )
                    with self._lock:
                        result.connections += 1
                body = self.sender.command_body(
                    f"orders-api read 15m PAY-{n} bench {n}", REQUESTERS[n % len(REQUESTERS)]
                )
                timestamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": timestamp,
                    "X-Slack-Signature": sign(SIGNING_SECRET, timestamp, body),
                }
                started = due if due is not None else time.perf_counter()
                try:
                    conn.request("POST", "/slack/events", body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    elapsed = time.perf_counter() - started
                    conn.close()
                    conn = None
                    with self._lock:
                        result.sent += 1
                        result.errors.append(
                            f"#{n} after {elapsed * 1000:.0f} ms: {type(exc).__name__}: {exc}"
                        )
                    continue
                elapsed = time.perf_counter() - started
                problem = self.check(response.status, data)
                with self._lock:
                    result.sent += 1
                    result.latencies.append(elapsed)
                    if problem:
                        result.errors.append(f"#{n}: {problem}")
                if response.will_close:
                    conn.close()
                    conn = None
            if conn is not None:
                conn.close()

        threads = [
            threading.Thread(target=worker, name=f"load-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, self.deadline - time.monotonic() + 2 * REQUEST_TIMEOUT))
        result.wall = time.perf_counter() - started
        if result.sent < count:
            result.errors.append(f"only {result.sent} of {count} requests sent (time limit)")
        return result


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --- report --------------------------------------------------------------------------------


def row(name: str, requests: int, concurrency: int, result: Result) -> list[str]:
    values = sorted(result.latencies)
    ms = [percentile(values, p) * 1000 for p in (50, 90, 99, 100)]
    rate = len(values) / result.wall if result.wall > 0 else math.nan
    return [
        name,
        str(requests),
        str(concurrency),
        *(f"{v:.1f}" for v in ms),
        f"{rate:.0f}",
        str(len(result.errors)),
    ]


def print_table(rows: list[list[str]]) -> None:
    header = ["target", "requests", "concurrency", "p50", "p90", "p99", "max", "req/s", "errors"]
    header = [f"{h} ms" if h in ("p50", "p90", "p99", "max") else h for h in header]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    print(line(header))
    for r in rows:
        print(line(r))


def print_errors(name: str, result: Result) -> None:
    if not result.errors:
        return
    shown = min(SHOWN_ERRORS, len(result.errors))
    print(f"\n{name}: {len(result.errors)} error(s); the first {shown}:")
    for error in result.errors[:SHOWN_ERRORS]:
        print(f"  {error}")


def count_cards(slack: FakeSlack) -> int:
    return sum(
        1
        for args in slack.calls_to("chat.postMessage")
        if args.get("channel") == APPROVER_CHANNEL and "blocks" in args and "thread_ts" not in args
    )


def drain_cards(slack: FakeSlack, expected: int, timeout: float) -> tuple[int, float]:
    """Wait (at most `timeout`) until the fake Slack has `expected` cards; (count, seconds)."""
    started = time.monotonic()
    while True:
        cards = count_cards(slack)
        waited = time.monotonic() - started
        if cards >= expected or waited >= timeout:
            return cards, waited
        time.sleep(0.25)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ack latency of /prod-access: the bot vs a bare Bolt app, both on gunicorn."
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--concurrency", type=int, default=20, help="client threads (connections)")
    parser.add_argument("--threads", type=int, default=8, help="WEB_THREADS for both servers")
    parser.add_argument("--warmup", type=int, default=100, help="uncounted requests per target")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 requests per target")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: send this many requests per second to each target (same load for "
        "both) instead of as fast as answers come back",
    )
    parser.add_argument("--drain", type=float, default=30.0, help="max seconds to wait for cards")
    parser.add_argument(
        "--time-limit", type=float, default=900.0, help="stop sending after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 200
    if args.requests < 1 or args.concurrency < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--requests, --concurrency and --threads must be >= 1, --warmup >= 0")
    return args


def gunicorn_has_control_socket() -> bool:
    from gunicorn.config import Config

    return "control_socket_disable" in Config().settings


def server_env(base: dict[str, str], **values: str) -> dict[str, str]:
    """The caller's environment without any SLACK_* variable, plus `values`."""
    env = {k: v for k, v in base.items() if not k.upper().startswith("SLACK_")}
    env.update(values)
    return env


def make_servers(
    args: argparse.Namespace, tmp: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> tuple[Server, Server]:
    policy = write_policy(
        tmp / "policy.yml", webhook.url, approvers=tuple(APPROVERS), channel=APPROVER_CHANNEL
    )
    common = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "WEB_THREADS": str(args.threads),
        "PYTHONUNBUFFERED": "1",
    }
    bot_port, bare_port = free_port(), free_port()
    bot = Server(
        "bot",
        [prod_access_executable(), "serve", "--http"],
        server_env(
            dict(os.environ),
            **common,
            DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
            POLICY_FILE=str(policy),
            PORT=str(bot_port),
            TEST_WEBHOOK_SECRET=WEBHOOK_SECRET,
            LOG_FORMAT="json",
            LOG_LEVEL="warning",
        ),
        cwd=tmp,  # no stray .env from wherever the script was started
        port=bot_port,
        log=tmp / "bot.log",
    )
    bare_cmd = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1"]
    bare_cmd += ["--threads", str(args.threads), "-b", f"127.0.0.1:{bare_port}"]
    bare_cmd += ["--timeout", "60", "--graceful-timeout", "30"]
    if gunicorn_has_control_socket():  # app/web.py turns it off too (gunicorn >= 25.1)
        bare_cmd.append("--no-control-socket")
    bare_cmd.append("bench.bare_bolt_app:api")
    bare = Server(
        "bare",
        bare_cmd,
        server_env(dict(os.environ), **common),
        cwd=REPO,
        port=bare_port,
        log=tmp / "bare.log",
    )
    return bot, bare


def measure(
    args: argparse.Namespace, slack: FakeSlack, bot: Server, bare: Server, deadline: float
) -> int:
    ready = {server.name: server.wait_healthy() for server in (bot, bare)}
    print(
        f"ack latency of /prod-access quick requests - {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPU(s)\n"
        f"servers: gunicorn, 1 worker, gthread, {args.threads} threads each "
        f"(healthy after: bot {ready['bot']:.1f}s, bare {ready['bare']:.1f}s); "
        "bot on SQLite with one webhook system\n"
        f"load: {args.concurrency} client thread(s), one keep-alive connection each, "
        + (f"open loop at {args.rate:g} requests/s; " if args.rate else "closed loop; ")
        + f"{args.warmup} warm-up + {args.requests} measured requests per target; "
        "targets run one after the other: bare first, then bot\n",
        flush=True,
    )

    sender = SlackSender("", SIGNING_SECRET, slack.response_url("bench"))
    results: dict[str, Result] = {}
    for name, port, check in (("bare", bare.port, check_bare), ("bot", bot.port, check_bot)):
        load = Load(port, args.concurrency, sender, check, deadline)
        if args.warmup:
            warm = load.run(args.warmup, args.rate)
            print_errors(f"{name} (warm-up)", warm)
        results[name] = load.run(args.requests, args.rate)

    expected_cards = args.warmup + args.requests
    cards, drained = drain_cards(slack, expected_cards, args.drain)

    print_table([row(name, args.requests, args.concurrency, r) for name, r in results.items()])
    bot_p99 = percentile(sorted(results["bot"].latencies), 99)
    bare_p99 = percentile(sorted(results["bare"].latencies), 99)
    ratio = bot_p99 / bare_p99 if bare_p99 > 0 else math.nan
    verdict = "met" if ratio <= 1.5 else "not met"
    print(f"\nbot p99 / bare p99 = {ratio:.2f}x  (target <= 1.5x: {verdict})")
    print(
        "connections opened (keep-alive): "
        + ", ".join(f"{name} {r.connections}" for name, r in results.items())
    )
    print(
        f"cards posted to {APPROVER_CHANNEL} (chat.postMessage with blocks): {cards} of "
        f"{expected_cards} bot requests (warm-up included), "
        f"drained {drained:.1f}s after the last bot answer"
    )
    dms = sum(
        1
        for call in slack.calls_to("chat.postMessage")
        if str(call.get("channel", "")).startswith("U0BENCH")
    )
    print(f"requester DMs posted: {dms}")
    for name, result in results.items():
        print_errors(name, result)
    for server in (bot, bare):
        if server.proc is not None and server.proc.poll() is not None:
            print(f"\n{server.name} exited early ({server.proc.returncode}):\n{server.log_tail()}")
    return 1 if any(r.errors for r in results.values()) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.time_limit

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)  # unwind through the finally blocks: servers stop, files go

    signal.signal(signal.SIGTERM, on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="prod-access-bench-"))
    try:
        with FakeSlack(users=fake_users()) as slack, WebhookReceiver(WEBHOOK_SECRET) as webhook:
            servers = make_servers(args, tmp, slack, webhook)
            try:
                for server in servers:
                    server.start()
                return measure(args, slack, *servers, deadline)
            except StartupError as exc:
                print(f"ack_latency: {exc}", file=sys.stderr)
                return 2
            finally:  # before the fakes stop, so a graceful shutdown still reaches them
                for server in servers:
                    server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
