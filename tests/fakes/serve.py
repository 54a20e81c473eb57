"""`prod-access serve --http` in a subprocess, as the Procfile runs it, for tests that need the
real server (signals, timers, logs): start, health, stop, its stdout and stderr."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import SIGNING_SECRET, WEBHOOK_SECRET, eventually, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackSender
from tests.fakes.webhook_receiver import WebhookReceiver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`python -m app serve --http` as the Procfile runs it; stdout and stderr kept apart."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path, self.env = tmp_path, env
        self.port = int(env["PORT"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.out, self.err = tmp_path / "serve.out", tmp_path / "serve.err"

    def start(self) -> None:
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--http"],
                cwd=self.tmp_path,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: kill() reaches the worker too
            )
        eventually(self.healthy, timeout=30, what=f"healthz; stderr:\n{self.stderr()}")

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}:\n{self.stderr()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL to gunicorn's master and its worker at once: no handler runs, nothing is
        finished (a crash, a container killed). Killing the master alone would leave the
        worker finishing its provider call until it noticed, sooner or later on a busy
        machine, that its parent was gone."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    @property
    def sender(self) -> SlackSender:
        return SlackSender(f"http://127.0.0.1:{self.port}/slack/events", SIGNING_SECRET, "")


def serve_env(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, **settings: str
) -> dict[str, str]:
    """The environment of a `prod-access serve` with the tests' policy (webhook timeout 10 s)."""
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    policy.write_text(policy.read_text().replace("timeout: 2", "timeout: 10"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    return {
        **clean,
        "SLACK_BOT_TOKEN": "xoxb-resilience-test",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "POLICY_FILE": str(policy),
        "PORT": str(free_port()),
        "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_FORMAT": "json",
        **settings,
    }
