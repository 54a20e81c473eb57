"""run_cli_here runs a command in the test's own process, as strict as a process of its own: a
start that serves instead of refusing, or a command that hangs, fails the test (and leaves no
signal handler or timer behind); a warning or a library's log line before logging is set up
reaches the command's stderr, where a real process would print it."""

from __future__ import annotations

import logging
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from app import cli
from tests.conftest import run_cli_here
from tests.fakes.serve import serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver


def _handlers() -> dict[int, Any]:
    return {signum: signal.getsignal(signum) for signum in signal.valid_signals()}


def test_a_serve_that_starts_serving_instead_of_refusing_fails_at_once(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    env = serve_env(tmp_path, slack, webhook)  # nothing wrong with it: serve would serve
    before = _handlers()
    started = time.monotonic()
    with pytest.raises(AssertionError, match="tried to fork"):
        run_cli_here(tmp_path, env, "serve", "--http")
    assert time.monotonic() - started < 30
    assert _handlers() == before


def test_a_command_that_hangs_fails_after_its_timeout(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    before = _handlers()
    slack.hold("auth.test")  # serve waits for Slack's answer at start
    try:
        started = time.monotonic()
        with pytest.raises(AssertionError, match="did not finish within 1 s"):
            run_cli_here(tmp_path, env, "serve", "--http", timeout=1)
        assert time.monotonic() - started < 10
    finally:
        slack.release()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert _handlers() == before


def test_warnings_and_early_library_lines_reach_the_commands_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cli.build_parser

    def noisy_parser() -> Any:
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        warnings.warn("a deprecation nobody sees", DeprecationWarning, stacklevel=1)
        logging.getLogger("some.library").warning("a library's line before set-up")
        return real()

    monkeypatch.setattr(cli, "build_parser", noisy_parser)
    result = run_cli_here(tmp_path, {}, "policy", "diff", "--help")
    assert result.returncode == 0
    assert "UserWarning: a library's warning" in result.stderr
    assert "a library's line before set-up" in result.stderr
    assert "deprecation" not in result.stderr
