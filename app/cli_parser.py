"""The `prod-access` command line's grammar: every command and option, with its help and its
default, as `--help` shows them (app/cli.py runs the commands).

Rules it relies on:
- every argument and option has help text, and every option's help ends with its default:
  `ArgumentDefaultsHelpFormatter` adds `(default: …)` for a value that means something as it
  is (100, jsonl, 30d); where the default is "not given" (None, False), the help says in words
  what that means, e.g. `(default: every system)`;
- descriptions and epilogs are printed as written (line breaks kept), so exit codes can be a
  list.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from app.cli_delegate import add_delegate_command
from app.models import SessionState

SERVE_MODES = (
    "Without --http or --socket: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP.\n"
    "Settings come from the environment and .env, the policy from policy.yml (POLICY_FILE),\n"
    "both in the current directory."
)
RECONCILE_EXIT_CODES = """exit status:
  0  every provider matched the sessions
  1  findings (listed, and alerted in Slack when a bot token is set)
  2  another replica was reconciling at that moment (nothing was checked; try again),
     or a setting or the policy is wrong"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every option's help, unless the help already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default:" in action.help:
            return action.help
        return super()._get_help_string(action)


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    *,
    description: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog=epilog,
        formatter_class=HelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prod-access",
        description="Temporary, task-bound production access through Slack.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (`COMMAND --help`)"
    )
    serve = _command(
        commands,
        "serve",
        "run the bot (HTTP, or Socket Mode with an app token)",
        description=f"Run the bot.\n\n{SERVE_MODES}",
    )
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument(
        "--http",
        action="store_true",
        help="serve POST /slack/events on $PORT (default port: 3000); without either flag: "
        "Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP",
    )
    mode.add_argument("--socket", action="store_true", help="connect with Socket Mode")
    db = _command(commands, "db", "database tasks")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply the migrations")
    _command(
        commands,
        "reconcile",
        "compare every provider with the sessions once; exit 1 on findings",
        epilog=RECONCILE_EXIT_CODES,
    )
    check = _command(
        commands,
        "check",
        "check settings, policy, Slack, channels and providers; exit 1 on problems",
    )
    check.add_argument("--json", action="store_true", help="JSON lines (default: a table)")
    _add_audit_commands(commands)
    _add_policy_commands(commands)
    sessions = _command(commands, "sessions", "list sessions (newest first)")
    sessions.add_argument(
        "--state", choices=[s.value for s in SessionState], help="only this state (default: any)"
    )
    sessions.add_argument(
        "--user", help="Slack user id of the person who had the access (default: anyone)"
    )
    sessions.add_argument("--system", help="only this system id (default: every system)")
    sessions.add_argument("--limit", type=int, default=100, help="at most this many")
    sessions.add_argument("--json", action="store_true", help="JSON lines (default: a table)")
    revoke = _command(commands, "revoke", "end a session now (emergency, audited)")
    revoke.add_argument("session_id", help="the session to end, e.g. S-4M8D2QXA")
    revoke.add_argument("--note", help="why, for the audit trail (default: no note)")
    revoke.add_argument(
        "--policy",
        metavar="FILE",
        help="the policy file to revoke with; for a session whose system the current policy "
        "no longer has, the file that still has it (default: POLICY_FILE)",
    )
    add_delegate_command(commands, HelpFormatter)
    return parser


POLICY_CHECK_EXIT_CODES = """errors: the bot would refuse the file, or the policy cannot work as
  written; warnings: allowed, but worth a reviewer's second look (they fail only
  with --strict).

exit status:
  0  no errors (warnings may be printed)
  1  errors (with --strict: errors or warnings)"""


def _add_policy_commands(commands: argparse._SubParsersAction) -> None:
    policy = _command(
        commands,
        "policy",
        "check, explain or diff policy files (for a policy repository's CI and reviews); "
        "reload the running bot's",
    )
    actions = policy.add_subparsers(
        dest="policy_action",
        required=True,
        metavar="ACTION",
        help="check, explain, diff or reload",
    )
    check = _command(
        actions,
        "check",
        "every problem in policy files, as file:line: key: reason; exit 1 on errors",
        description="Validate policy files without settings, a database or Slack: every "
        "problem start-up\nwould stop at, and what a reviewer misses.",
        epilog=POLICY_CHECK_EXIT_CODES,
    )
    check.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="policy files to check (default: POLICY_FILE, else policy.yml)",
    )
    check.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default="text",
        help="text lines, a JSON list of {file, line, key, reason, severity}, or GitHub "
        "Actions annotations",
    )
    check.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="the same as --format json (default: text)",
    )
    check.add_argument(
        "--strict", action="store_true", help="warnings fail too (default: only errors fail)"
    )
    explain = _command(
        actions,
        "explain",
        "what the bot would do for a person and a system: request, approve, route, grant",
        description="What the bot would do for a person and a system (or one of its roles).\n"
        "With SLACK_BOT_TOKEN set, user groups are expanded and the person's email is looked\n"
        "up in Slack; without, groups are shown by their handle.",
        epilog="exit status:\n  0  explained\n  1  no such system or role in the policy\n"
        "  2  a setting or the policy is wrong",
    )
    explain.add_argument(
        "--user",
        required=True,
        help="the person's Slack user id, e.g. U0NINA (default: none; required)",
    )
    explain.add_argument(
        "--system", required=True, help="a system id, e.g. checkout-db (default: none; required)"
    )
    explain.add_argument("--role", help="one role of the system (default: every role)")
    explain.add_argument(
        "--email",
        help="the person's email, for an identity made from it (default: asked of Slack when "
        "SLACK_BOT_TOKEN is set)",
    )
    explain.add_argument("--policy", metavar="FILE", help="the policy (default: POLICY_FILE)")
    diff = _command(
        actions,
        "diff",
        "what changes for whom between two policy files, by system and role",
        description="What changes for whom between two policy files, by system and role, as "
        "the bot\napplies them (inherited defaults included). Changes that give someone more "
        "access\nare marked (wider access).",
        epilog="exit status:\n  0  compared (with --exit-code: no changes)\n"
        "  1  with --exit-code: there are changes\n  2  a policy file is not valid",
    )
    diff.add_argument("old", help="the policy before, e.g. from `git show main:policy.yml`")
    diff.add_argument("new", help="the policy after")
    diff.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when there are changes, as git diff --exit-code (default: exit 0)",
    )

    reload = _command(
        actions,
        "reload",
        "check the policy file, then have every running replica reload it without a restart",
        description="Check the policy file as `policy check` does; when it has no error, ask "
        "every\nreplica (through the database) to reload it. Each reloads its own copy within\n"
        "POLICY_RELOAD_POLL_SECONDS, once that copy has the same sha256, and refuses it\n"
        "whole if anything is wrong there (the approver channel hears why).",
        epilog="exit status:\n  0  reload requested\n  1  the file has errors: nothing "
        "requested\n  2  a setting is wrong or the database is not set up",
    )
    reload.add_argument("--policy", metavar="FILE", help="the policy (default: POLICY_FILE)")


def _add_audit_commands(commands: argparse._SubParsersAction) -> None:
    audit = _command(commands, "audit", "print, verify or export the audit trail")
    audit.add_argument("--json", action="store_true", help="JSON lines (default: a table)")
    audit.add_argument("--request", help="only the events of this request id (default: all)")
    actions = audit.add_subparsers(
        dest="audit_action",
        metavar="ACTION",
        help="verify or export (default: print the trail as a table)",
    )
    _command(actions, "verify", "check the hash chain; exit 1 when broken")
    export = _command(actions, "export", "one row per event, streamed")
    export.add_argument(
        "--since",
        type=_when,
        help="2026-10-01, an ISO time, or 30d (ago) (default: from the first event)",
    )
    export.add_argument(
        "--until", type=_when, help="same forms as --since, exclusive (default: now)"
    )
    export.add_argument("--system", help="only this system id (default: every system)")
    export.add_argument(
        "--user",
        help="only events by, or about requests of, this Slack user id (default: everyone)",
    )
    export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl", help="file format")
    export.add_argument("-o", "--output", help="write to this file (default: stdout)")
    review = _command(commands, "review", "the access review report for a period")
    review.add_argument("--since", type=_when, default="30d", help="start: a date, time or ago")
    review.add_argument("--until", type=_when, help="end, exclusive (default: now)")
    review.add_argument("--format", choices=["md", "csv", "html"], default="md", help="format")
    review.add_argument("-o", "--output", help="write to this file (default: stdout)")


def _when(text: str) -> datetime:
    """A point in time: a date (midnight UTC), an ISO 8601 time, or a duration ago (30d)."""
    from app import clock
    from app.policy_values import parse_duration

    try:
        return clock.now() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-10-01), an ISO time or a duration such as 30d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
