"""What a person sees and can click in Block Kit the bot sent, read from the parsed structure.

Tests ask these instead of searching a JSON dump (`"x" in json.dumps(blocks)`), which also
matches ids, URLs, escaped quotes and key names nobody reads, and so can pass for the wrong
reason. A text object is a dict with `type` `plain_text` or `mrkdwn` and a string `text`
(in sections, fields, context elements, buttons, headers, modal titles, labels, options);
an element one can act on carries an `action_id` and, for a button, a `value`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TEXT_TYPES = ("plain_text", "mrkdwn")


def _dicts(payload: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside blocks, a view or a message, depth first, in order."""
    if isinstance(payload, dict):
        yield payload
        for value in payload.values():
            yield from _dicts(value)
    elif isinstance(payload, list):
        for item in payload:
            yield from _dicts(item)


def texts(payload: Any) -> list[str]:
    """The text of every text object, in the order a reader meets them."""
    return [
        d["text"]
        for d in _dicts(payload)
        if d.get("type") in TEXT_TYPES and isinstance(d.get("text"), str)
    ]


def shows(payload: Any, needle: str) -> bool:
    """Whether some text object's text contains `needle`."""
    return any(needle in text for text in texts(payload))


def action_ids(payload: Any) -> list[str]:
    """The `action_id` of every element one can act on (buttons, selects, inputs)."""
    return [d["action_id"] for d in _dicts(payload) if isinstance(d.get("action_id"), str)]


def offers(payload: Any, action_id: str) -> bool:
    """Whether an element with this `action_id` is there to click or fill in."""
    return action_id in action_ids(payload)


def button_values(payload: Any) -> list[str]:
    """The `value` of every button (the ids the bot reads back when it is clicked)."""
    return [
        d["value"]
        for d in _dicts(payload)
        if d.get("type") == "button" and isinstance(d.get("value"), str)
    ]


def message_texts(args: dict[str, Any]) -> list[str]:
    """A message's texts: those in its blocks, then its top-level `text` (the fallback)."""
    found = texts(args.get("blocks"))
    if isinstance(args.get("text"), str):
        found.append(args["text"])
    return found


def says(args: dict[str, Any], needle: str) -> bool:
    """Whether a message (its blocks or its fallback text) contains `needle`."""
    return any(needle in text for text in message_texts(args))


def option_values(payload: Any) -> list[str]:
    """The `value` of every option a select offers (a system id, a role id)."""
    return [
        option["value"]
        for d in _dicts(payload)
        for option in d.get("options") or []
        if isinstance(option, dict) and isinstance(option.get("value"), str)
    ]
