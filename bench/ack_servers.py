"""The three targets bench/ack_latency.py loads, each in a process (group) of its own:

- sync-floor:  bench/bare_bolt_app.py, a Bolt `App` that only acks, under gunicorn exactly as
               the bot is served (1 worker, gthread, the same `--threads`);
- async-floor: bench/bare_async_app.py, a Bolt `AsyncApp` that only acks, under uvicorn
               (1 worker, its default loop and HTTP parser): the floor a team picking Bolt for
               speed would start from;
- bot:         the real bot, started as production starts it (`prod-access serve --http`:
               gunicorn, 1 worker, gthread, WEB_THREADS threads), on SQLite with a webhook system.

All three verify request signatures with the same secret and talk to the same fake Slack Web
API. Each is ready when GET /healthz answers 200; each is stopped with SIGTERM (graceful), then
SIGKILL to its whole process group.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.policy import write_policy  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-7d1c4a9e0b"
WEBHOOK_SECRET = "whsec-bench-0123456789"
BOT_TOKEN = "xoxb-bench"
APPROVER_CHANNEL = "C0APPROVALS"
APPROVERS = ("U0APPROVER1", "U0APPROVER2")
REQUESTERS = tuple(f"U0BENCH{i:04d}" for i in range(100))

SYNC_FLOOR, ASYNC_FLOOR, BOT = "sync-floor", "async-floor", "bot"
TARGETS = (SYNC_FLOOR, ASYNC_FLOOR, BOT)  # the order they are loaded in, every round

STARTUP_TIMEOUT = 60.0  # seconds for a server to answer /healthz
STOP_TIMEOUT = 35.0  # gunicorn's graceful_timeout is 30 s; SIGKILL after this


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
    """A server subprocess in its own process group, logging to a file."""

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

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's processes, the whole process
        group (gunicorn's master and worker), from /proc; 0.0 where /proc is not there."""
        if self.proc is None:
            return 0.0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended meanwhile
            # after the command: state ppid pgrp session … utime(12) stime(13)
            if int(fields[2]) == self.proc.pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

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
        """SIGTERM to the server (graceful), then SIGKILL to its whole process group."""
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


def gunicorn_has_control_socket() -> bool:
    from gunicorn.config import Config

    return "control_socket_disable" in Config().settings


def server_env(base: dict[str, str], **values: str) -> dict[str, str]:
    """The caller's environment without any SLACK_* variable, plus `values`."""
    env = {k: v for k, v in base.items() if not k.upper().startswith("SLACK_")}
    env.update(values)
    return env


def make_servers(tmp: Path, threads: int, slack_url: str, webhook_url: str) -> dict[str, Server]:
    """The three targets by name, in the order they are loaded, not started yet."""
    policy = write_policy(
        tmp / "policy.yml", webhook_url, approvers=tuple(APPROVERS), channel=APPROVER_CHANNEL
    )
    common = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_url,
        "WEB_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }
    env = server_env(dict(os.environ), **common)
    sync_port, async_port, bot_port = free_port(), free_port(), free_port()

    sync_cmd = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1"]
    sync_cmd += ["--threads", str(threads), "-b", f"127.0.0.1:{sync_port}"]
    sync_cmd += ["--timeout", "60", "--graceful-timeout", "30"]
    if gunicorn_has_control_socket():  # app/web.py turns it off too (gunicorn >= 25.1)
        sync_cmd.append("--no-control-socket")
    sync_cmd.append("bench.bare_bolt_app:api")

    async_cmd = [sys.executable, "-m", "uvicorn", "--workers", "1"]
    async_cmd += ["--host", "127.0.0.1", "--port", str(async_port)]
    async_cmd += ["--no-access-log", "--log-level", "warning", "bench.bare_async_app:api"]

    bot_env = server_env(
        dict(os.environ),
        **common,
        DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        POLICY_FILE=str(policy),
        PORT=str(bot_port),
        TEST_WEBHOOK_SECRET=WEBHOOK_SECRET,
        LOG_FORMAT="json",
        LOG_LEVEL="warning",
    )
    return {
        SYNC_FLOOR: Server(SYNC_FLOOR, sync_cmd, env, REPO, sync_port, tmp / "sync-floor.log"),
        ASYNC_FLOOR: Server(ASYNC_FLOOR, async_cmd, env, REPO, async_port, tmp / "async.log"),
        # cwd: no stray .env from wherever the script was started
        BOT: Server(
            BOT,
            [prod_access_executable(), "serve", "--http"],
            bot_env,
            tmp,
            bot_port,
            tmp / "bot.log",
        ),
    }
