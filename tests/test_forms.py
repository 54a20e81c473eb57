"""Reading a modal's state (app/slack/listeners/forms.py) from view_submission bodies in the
shapes Slack sends (tests/fixtures/slack/payloads/): pure functions, no Slack, no database."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.slack.ids import Block
from app.slack.listeners import forms

PAYLOADS = Path(__file__).parent / "fixtures" / "slack" / "payloads"


def _values(name: str) -> dict[str, Any]:
    body = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    body = body.get("payload", body)  # a Socket Mode envelope carries the body in `payload`
    return body["view"]["state"]["values"]


@pytest.fixture
def request_modal() -> dict[str, Any]:
    return _values("request_modal_submission.json")


def test_the_request_modal_reads_as_the_form_the_person_filled_in(
    request_modal: dict[str, Any],
) -> None:
    assert forms.selected(request_modal) == ("orders-api", "write")
    assert forms.value(request_modal, Block.duration) == "1h"  # block id duration:orders-api:write
    assert forms.value(request_modal, Block.ticket) == "PAY-1"
    assert forms.value(request_modal, Block.reason) == "refund a stuck order"
    assert forms.checked(request_modal, Block.breakglass) == ["breakglass"]


def test_a_field_left_empty_or_not_shown_reads_as_nothing(request_modal: dict[str, Any]) -> None:
    values = copy.deepcopy(request_modal)
    values["reason"]["reason_input"]["value"] = None  # Slack sends null for an empty text input
    values["role:orders-api"]["role_select"]["selected_option"] = None
    values["breakglass:orders-api"]["breakglass_toggle"]["selected_options"] = []
    del values["ticket"]
    assert forms.value(values, Block.reason) is None
    assert forms.selected(values) == ("orders-api", None)
    assert forms.checked(values, Block.breakglass) == []
    assert forms.value(values, Block.ticket) is None


def test_a_block_is_found_by_its_id_or_its_id_and_a_suffix_never_a_longer_name() -> None:
    values = {
        "reasonable": {"a": {"type": "plain_text_input", "value": "not this one"}},
        "reason:x": {"b": {"type": "plain_text_input", "value": "this one"}},
    }
    assert forms.value(values, Block.reason) == "this one"


def test_slacks_own_payloads_read_without_error() -> None:
    assert forms.value(_values("bolt_view_submission.json"), "hspI") == "test"
    empty = _values("real_socket_view_submission_envelope.json")
    assert forms.selected(empty) == (None, None)
    assert forms.checked(empty, Block.breakglass) == []
    assert forms.field_errors(empty, {"reason": "Say why."}) == {"": "Say why."}


def test_errors_land_on_the_block_the_person_sees(request_modal: dict[str, Any]) -> None:
    errors = forms.field_errors(
        request_modal,
        {"duration": "Too long.", "ticket": "Unknown ticket.", "breakglass": "Not for you."},
    )
    assert errors == {
        "duration:orders-api:write": "Too long.",
        "ticket": "Unknown ticket.",
        "breakglass:orders-api": "Not for you.",
    }


def test_an_error_for_a_field_not_on_the_modal_goes_to_the_system_choice(
    request_modal: dict[str, Any],
) -> None:
    values = {b: v for b, v in request_modal.items() if not b.startswith(("role", "duration"))}
    errors = forms.field_errors(values, {"role": "Choose one.", "duration": "Choose one too."})
    assert errors == {"system": "Choose one."}  # one message a block: the first to fix
