"""`prod-access … --help` as an operator reads it: `serve` says which mode it picks without a
flag and where it reads its settings and policy, every argument and option of every command
has help that shows its default, and `reconcile` lists its exit codes. And what the help and
README say about the current directory is what the bot does: `.env` and `policy.yml` are read
from there."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from app.cli_parser import build_parser
from tests.conftest import SIGNING_SECRET, WEBHOOK_SECRET, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

README = Path(__file__).parent.parent / "README.md"


def _help(*command: str) -> str:
    """The --help text, with line wrapping undone (argparse wraps to the terminal's width)."""
    result = subprocess.run(
        [sys.executable, "-m", "app", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    return " ".join(result.stdout.split())


def _parsers(
    parser: argparse.ArgumentParser, name: str = "prod-access"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, the top one and each (sub)command's, by its name."""
    yield name, parser
    for action in parser._actions:  # argparse lists subcommands only on this private field
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _parsers(subparser, f"{name} {sub}")


def test_serve_help_says_which_mode_it_picks_without_a_flag() -> None:
    text = _help("serve")
    assert (
        "Without --http or --socket: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP."
        in text
    )
    assert "from the environment and .env, the policy from policy.yml" in text
    assert "in the current directory" in text


def test_every_argument_and_option_of_every_command_has_help_showing_its_default() -> None:
    parsers = dict(_parsers(build_parser()))
    assert {"prod-access serve", "prod-access audit export", "prod-access revoke"} <= set(parsers)
    for name, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{what} has no help"
            shown = formatter._get_help_string(action) or ""
            if action.option_strings:
                assert "(default:" in shown, f"{what}: {shown!r} does not show its default"
                assert "(default: None)" not in shown, f"{what}: say what no value means"
    export = _help("audit", "export")
    assert "--format {csv,jsonl} file format (default: jsonl)" in export
    assert "-o OUTPUT, --output OUTPUT write to this file (default: stdout)" in export
    assert "--limit LIMIT at most this many (default: 100)" in _help("sessions")


def test_reconcile_help_lists_its_exit_codes() -> None:
    text = _help("reconcile")
    assert re.search(r"exit status: 0 every provider matched .* 1 findings .* 2 another", text)


def test_env_and_policy_yml_are_read_from_the_current_directory_as_readme_says(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    """No variable set: what `check` finds comes from ./.env and ./policy.yml."""
    readme = " ".join(README.read_text().split())
    assert "`.env` and `policy.yml` are read from the current directory" in readme
    write_policy(tmp_path / "policy.yml", webhook.url)
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN=xoxb-from-dotenv\nSLACK_SIGNING_SECRET={SIGNING_SECRET}\n"
        f"SLACK_API_URL={slack.url}\nTEST_WEBHOOK_SECRET={WEBHOOK_SECRET}\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DATABASE_", "POLICY_", "TEST_", "PAGERDUTY_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "app", "check", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows = {row["check"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows["settings"]["detail"] == "complete for HTTP mode (SLACK_SIGNING_SECRET)"
    assert rows["policy"]["detail"] == "policy.yml: 1 system(s), 2 role(s)"
    assert slack.calls[0].headers["authorization"] == "Bearer xoxb-from-dotenv"
