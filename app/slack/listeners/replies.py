"""How a listener answers the person who clicked, after the ack: an operation's refusal goes
back to them alone (an ephemeral message where the click was, else a DM), never to the channel;
a button that opens a modal checks the clicker first. `operation_button` and `modal_button` are
the listeners of the two kinds of button whose value names a request or a session.

The payload only says who clicked; what they may do is decided by the operation called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from slack_bolt import Ack
from slack_sdk import WebClient

from app.context import AppContext
from app.operations.common import read_row
from app.operations.errors import OperationError
from app.slack.after_ack import AfterAck
from app.slack.text import with_mentions

log = structlog.get_logger(__name__)
#: A Bolt listener for a button (Bolt passes what its parameters name).
ButtonListener = Callable[[Ack, dict, dict, WebClient], None]


def attempt(
    fn: Callable[[], Any], client: WebClient | None = None, body: dict | None = None
) -> Any:
    """Run an operation; a refusal goes back to the clicker only (when `client` and `body` say
    who and where), and None is returned instead of its result."""
    try:
        return fn()
    except OperationError as exc:
        log.info("operation_refused", reason=str(exc))
        if client is not None and body is not None:
            tell(client, body, refusal(exc))
        return None


def tell(client: WebClient, body: dict, text: str, blocks: list[dict] | None = None) -> None:
    """Say `text` (or `blocks`) to the clicker alone: ephemeral in the channel of the click,
    else in a DM."""
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    extra: dict[str, Any] = {"blocks": blocks} if blocks else {}  # none: as before, text only
    if channel:
        client.chat_postEphemeral(channel=channel, user=user, text=text, **extra)
    else:
        client.chat_postMessage(channel=user, text=text, **extra)


def refusal(exc: OperationError) -> str:
    """A refusal as mrkdwn: its text escaped, the people it names still mentioned."""
    return f":no_entry: {with_mentions(str(exc), exc.mentions)}"


def open_modal(
    ctx: AppContext,
    model: Any,  # AccessRequest or AccessSession
    row_id: str,
    check: Callable[[Any, str], None],
    build: Callable[[Any], dict],
    body: dict,
    client: WebClient,
) -> None:
    """A button that opens a modal: the clicker is checked first (refused: told so)."""

    def checked() -> Any:
        row = read_row(ctx, model, row_id)
        check(row, body["user"]["id"])
        return row

    row = attempt(checked, client, body)
    if row is not None:
        client.views_open(trigger_id=body["trigger_id"], view=build(row))


def operation_button(later: AfterAck, run: Callable[[str, str], Any]) -> ButtonListener:
    """A button that runs an operation, `run(the button's value, the clicker)`, after the ack;
    a refusal is told to the clicker alone."""

    def on_click(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        later(attempt, lambda: run(action["value"], user), client, body)

    return on_click


def modal_button(
    ctx: AppContext,
    later: AfterAck,
    model: Any,  # AccessRequest or AccessSession
    check: Callable[[Any, str], None],
    build: Callable[[Any], dict],
) -> ButtonListener:
    """A button that opens a modal about the row its value names, once `check(row, clicker)`
    lets the clicker (see open_modal)."""

    def on_click(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(open_modal, ctx, model, action["value"], check, build, body, client)

    return on_click
