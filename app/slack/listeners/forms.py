"""Reading what a person typed or chose in a modal: the `view.state.values` Slack sends with a
view_submission (and with a block_actions inside a modal). Pure functions over that dict.

Some block ids carry suffixes (`role:<system>`, `duration:<system>:<role>`,
`breakglass:<system>`, see app/slack/ids.py) so that Slack resets a choice when the system
changes; a field is found by its block id or by that id followed by ':'.
"""

from __future__ import annotations

from app.slack.ids import Block


def _inputs(values: dict, block_prefix: str) -> list[dict]:
    """The input elements of the blocks called `block_prefix` (or `block_prefix:…`)."""
    return [
        element
        for block_id, actions in values.items()
        if block_id == block_prefix or block_id.startswith(block_prefix + ":")
        for element in actions.values()
    ]


def value(values: dict, block_prefix: str) -> str | None:
    """The value of the first input of the block `block_prefix` that has one: a select's chosen
    option, or a text input's text (an empty text input sends None)."""
    for element in _inputs(values, block_prefix):
        if element.get("selected_option"):
            return element["selected_option"]["value"]
        if element.get("value") is not None:
            return element["value"]
    return None


def checked(values: dict, block_prefix: str) -> list[str]:
    """The values ticked in the checkboxes of the block `block_prefix` (none ticked: [])."""
    for element in _inputs(values, block_prefix)[:1]:
        return [option["value"] for option in element.get("selected_options") or []]
    return []


def selected(values: dict) -> tuple[str | None, str | None]:
    """The system and role chosen in the request modal so far."""
    return value(values, Block.system), value(values, Block.role)


def field_errors(values: dict, errors: dict[str, str]) -> dict[str, str]:
    """An operation's errors by field name, as Slack wants them: by the modal's block id (role
    and duration carry suffixes)."""
    out: dict[str, str] = {}
    # A field without a block of its own (no role chosen yet, no break-glass box): the top one.
    fallback = Block.system if Block.system in values else next(iter(values), "")
    for field, message in errors.items():
        block_id = next((b for b in values if b == field or b.startswith(field + ":")), fallback)
        out.setdefault(block_id, message)  # the first problem of a block is the one to fix first
    return out
