"""A checker for what Slack reads as a control sequence in the mrkdwn the bot sends.

Slack reads every `<…>` in mrkdwn as a control sequence (a mention, a channel, a date, a link)
and `&…;` as an entity, so text meant to be read as written must carry `&`, `<` and `>` as
`&amp;`, `&lt;` and `&gt;`. The only raw sequences allowed are the ones the bot builds on
purpose: people (`<@U…>`, `<@W…>`), channels (`<#C…>`), user groups (`<!subteam^S…>`), dates
(`<!date^…^…|…>`) and links (`<http(s)://…>`, `<mailto:…>`), each with its optional `|label`.
`<!here>`, `<!channel>` and `<!everyone>` are never allowed: the bot does not build them. A
`>` is otherwise only allowed as a block quote's marker (`> ` at the start of a line).

What counts as mrkdwn (Slack's rules): every text object of type `mrkdwn` in blocks and views,
and a message's top-level `text` (chat.postMessage, chat.update, chat.postEphemeral, a
response_url post, a slash command's or an interaction's answer), which Slack renders as
mrkdwn (the fallback of a message with blocks shows in notifications). `plain_text` objects
are shown as they are and are not checked. An escaped entity escaped again (`&amp;lt;`) is
reported too: it shows as `&lt;` instead of `<`.

`write_hostile_policy` is the policy the mrkdwn tests run the bot with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tests.fakes.policy import ALICE, BOB, LEAD1, LEAD2

ALLOWED = re.compile(
    r"""
      <@[UW][A-Z0-9]+>                                  # a person
    | <\#C[A-Z0-9]+(?:\|[^<>|]*)?>                      # a channel
    | <!subteam\^S[A-Z0-9]+(?:\|[^<>|]*)?>              # a user group
    | <!date\^\d+\^[^<>|]+\|[^<>|]+>                   # a date in the reader's time zone
    | <(?:https?://|mailto:)[^<>|\s]+(?:\|[^<>|]+)?>    # a link
    """,
    re.VERBOSE,
)
ENTITY = re.compile(r"&(?:amp|lt|gt);")
DOUBLE_ESCAPED = re.compile(r"&amp;(?:amp|lt|gt);")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")


def problems(text: str) -> list[str]:
    """What Slack would not show as written in this mrkdwn text (empty: all good)."""
    found: list[str] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char == "<":
            sequence = ALLOWED.match(text, at)
            if sequence is None:
                found.append(f"raw '<' at {at}: …{text[max(0, at - 20) : at + 30]!r}…")
                at += 1
                continue
            at = sequence.end()
            continue
        if char == ">" and not _quote_marker(text, at):
            found.append(f"stray '>' at {at}: …{text[max(0, at - 30) : at + 20]!r}…")
        elif char == "&" and not ENTITY.match(text, at):
            found.append(f"raw '&' at {at}: …{text[max(0, at - 20) : at + 20]!r}…")
        at += 1
    found += [f"escaped twice: {m.group()!r}" for m in DOUBLE_ESCAPED.finditer(text)]
    return found


def _quote_marker(text: str, at: int) -> bool:
    """`> ` at the start of a line is mrkdwn's block quote (text.quote writes it)."""
    return (at == 0 or text[at - 1] == "\n") and text[at + 1 : at + 2] == " "


def mrkdwn_in(payload: Any) -> Iterator[str]:
    """Every mrkdwn text object's text inside blocks or a view, however deeply nested."""
    if isinstance(payload, dict):
        if payload.get("type") == "mrkdwn" and isinstance(payload.get("text"), str):
            yield payload["text"]
        for value in payload.values():
            yield from mrkdwn_in(value)
    elif isinstance(payload, list):
        for item in payload:
            yield from mrkdwn_in(item)


def texts_of_call(method: str, args: dict[str, Any]) -> list[str]:
    """The mrkdwn texts one recorded Web API call (or response_url post) carries."""
    texts = list(mrkdwn_in(args.get("blocks"))) + list(mrkdwn_in(args.get("view")))
    if method in MESSAGE_METHODS and isinstance(args.get("text"), str):
        texts.append(args["text"])
    if isinstance(args.get("initial_comment"), str):  # a file's message
        texts.append(args["initial_comment"])
    return texts


def texts_of_answer(body: str) -> list[str]:
    """The mrkdwn texts in the bot's HTTP answer to Slack (an ack): a body that is not a JSON
    object is a message's text (Bolt answers `ack(text=…)` so); a JSON one may carry a
    message's `text` and blocks. A view submission's `errors` are shown as plain text under the
    inputs, so they are not mrkdwn."""
    if not body.strip():
        return []
    try:
        answer = json.loads(body)
    except ValueError:
        return [body]
    if not isinstance(answer, dict):
        return [body]
    texts = list(mrkdwn_in(answer.get("blocks"))) + list(mrkdwn_in(answer.get("view")))
    if isinstance(answer.get("text"), str):
        texts.append(answer["text"])
    return texts


def report(where_and_texts: Iterable[tuple[str, str]]) -> list[str]:
    """One line per text with problems: where it was sent, what is wrong, the text's start."""
    lines = []
    for where, text in where_and_texts:
        found = problems(text)
        if found:
            more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
            lines.append(f"{where}: {'; '.join(found[:3])}{more}\n    in: {text[:200]!r}")
    return lines


def write_hostile_policy(path: Path, hook_url: str) -> Path:
    """The policy the mrkdwn tests run with: a system name and a role description with <, >
    and &, a staging-tier system, break-glass for BOB; MALLORY may request nothing."""
    hook = f"{{url: '{hook_url}', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}"
    path.write_text(
        f"""\
defaults:
  approver_channel: C0APPROVALS
  email_domains: [example.com]
  closeout_reminders: [15m, 1h]
systems:
  - id: orders-api
    name: 'Orders <API> & "co"'
    provider: webhook
    config: {hook}
    identity: '{{email}}'
    ticket_pattern: '^\\S+$'
    approvers: [{LEAD1}, {LEAD2}]
    requesters: [{BOB}, {ALICE}]
    breakglass: {{users: [{BOB}], review_within: 15m, escalation_channel: C0INCIDENTS}}
    roles:
      - {{id: read, grant: orders-viewer, max_duration: 30m, description: 'SELECT <only> & co'}}
      - {{id: write, grant: orders-admin, max_duration: 2h}}
  - id: orders-staging
    name: Orders staging <beta> & co
    tier: staging
    provider: webhook
    config: {hook}
    identity: '{{email}}'
    approvers: [{LEAD1}]
    requesters: [{BOB}]
    roles:
      - {{id: write, grant: staging-admin}}
""",
        encoding="utf-8",
    )
    return path
