"""`prod-access delegate`: hand an approver's approvals to another approver for a while (out of
office), list the delegations, end one (app/operations/delegation.py does the rest).

The command line has no Slack identity: an operator runs it for someone, so the delegator is
named with `--from` and the operator is the actor in the audit trail (`cli:<login>`), as for
`revoke`. In Slack, the Home tab's button acts as the person who clicks it.

People are named as a Slack user id (`U0TOM`), a mention (`<@U0TOM>`), or `@handle`: a person's
Slack name, looked up with `users.list` (so only with SLACK_BOT_TOKEN set; a user group is not a
person and is refused). `--until` is a date (the delegation runs through that day, UTC), an ISO
time, or a duration from now (7d).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from app.config import Settings

USER_ID = re.compile(r"^<?@?([UW][A-Z0-9]{2,})(\|[^>]*)?>?$")
DELEGATE_EXIT_CODES = """exit status:
  0  done (or listed)
  2  refused (the reason is printed), or a setting or the policy is wrong"""


def add_delegate_command(commands: argparse._SubParsersAction, formatter: Any) -> None:
    """`delegate` and its options, on the `prod-access` parser."""
    parser = commands.add_parser(
        "delegate",
        help="hand an approver's approvals to another approver for a while (out of office)",
        description="Hand an approver's approvals to another approver of the same systems until "
        "a date;\nlist the delegations, or end one. Audited as cli:<your login>.",
        epilog=DELEGATE_EXIT_CODES,
        formatter_class=formatter,
    )
    parser.add_argument(
        "delegate",
        nargs="?",
        metavar="PERSON",
        help="who takes the approvals: U0LEA, <@U0LEA> or @lea (default: none; required "
        "unless --list or --cancel)",
    )
    parser.add_argument(
        "--from",
        dest="delegator",
        metavar="PERSON",
        help="whose approvals are handed on (the CLI has no Slack identity) (default: none; "
        "required with PERSON)",
    )
    parser.add_argument(
        "--until",
        help="2026-12-24 (through that day, UTC), an ISO time, or 7d from now (default: none; "
        "required with PERSON)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list running delegations (default: do not list)"
    )
    parser.add_argument(
        "--all", action="store_true", help="with --list: ended ones too (default: running only)"
    )
    parser.add_argument(
        "--cancel", metavar="ID", help="end this delegation now, e.g. D-7K3Q9X2M (default: none)"
    )


def parse_until(text: str, now: datetime) -> datetime:
    """The end of a delegation: a date runs through that day (UTC), an ISO time is exact (UTC
    when it names no zone), a duration counts from now. ValueError says what is accepted."""
    from app.policy_values import parse_duration

    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--until {text!r} is not a date (2026-12-24), an ISO time or a duration (7d)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_delegate(settings: Settings, args: argparse.Namespace) -> int:
    from app import clock
    from app.operations import delegation
    from app.operations.errors import OperationError
    from app.runtime import build_context

    ctx = build_context(settings)
    actor = f"cli:{getpass.getuser()}"
    try:
        if args.list:
            _print(delegation.listed(ctx, include_ended=args.all))
            return 0
        if args.cancel:
            ended = delegation.end_delegation(ctx, args.cancel, actor)
            print(f"{ended.id}: ended; {ended.from_id} decides again (audited as {actor})")
            return 0
        if not (args.delegate and args.delegator and args.until):
            return _refuse("give PERSON, --from PERSON and --until WHEN (or --list, --cancel ID)")
        to_id, from_id = _person(settings, args.delegate), _person(settings, args.delegator)
        until = parse_until(args.until, clock.now())
        made = delegation.create_delegation(ctx, from_id, to_id, until, actor)
    except (OperationError, LookupError, ValueError) as exc:
        return _refuse(str(exc))
    print(
        f"{made.id}: {made.to_id} decides for {made.from_id} until "
        f"{made.ends_at:%Y-%m-%d %H:%M} UTC (audited as {actor})"
    )
    return 0


def _refuse(reason: str) -> int:
    print(f"prod-access delegate: {reason}", file=sys.stderr)
    return 2


def _person(settings: Settings, text: str) -> str:
    """A Slack user id from U0LEA, <@U0LEA> or @handle (LookupError: who could not be found)."""
    found = USER_ID.match(text.strip())
    if found:
        return found.group(1)
    handle = text.strip().removeprefix("@").lower()
    if not text.strip().startswith("@") or not handle:
        raise LookupError(f"{text!r} is not a person: give U0…, <@U0…> or @handle")
    if not settings.slack_bot_token:
        raise LookupError(f"{text} can be looked up only with SLACK_BOT_TOKEN set; give U0…")
    from app.slack.app import make_client

    client = make_client(settings)
    matches: list[str] = []
    for page in client.users_list(limit=200):
        for member in page.get("members") or []:
            profile = member.get("profile") or {}
            names = {
                str(member.get("name", "")).lower(),
                str(profile.get("display_name", "")).lower(),
            }
            if handle in names and not member.get("deleted") and not member.get("is_bot"):
                matches.append(str(member["id"]))
    if len(matches) != 1:
        many = "more than one person is" if matches else "no person is"
        raise LookupError(f"{many} called {text} in Slack (a user group is not a person)")
    return matches[0]


def _print(rows: list[Any]) -> None:
    from app.cli import _print_table

    def when(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else ""

    _print_table(
        ["id", "from", "to", "until", "made_by", "ended"],
        [[d.id, d.from_id, d.to_id, when(d.ends_at), d.created_by, when(d.ended_at)] for d in rows],
    )
