"""The modals, built straight from rows and policy in memory and validated by slack_sdk's
View: the request form as a system and a role are chosen, break-glass only where offered,
the field limits the operations enforce, and the closeout, Deny and Extend modals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.operations.decide_request import DENY_REASON_MAX
from app.operations.request_access import REASON_MAX, TICKET_MAX
from app.policy import Policy
from app.slack.blocks import modals
from app.slack.text import slack_date
from tests.blocks_rows import (
    HOSTILE,
    HOSTILE_SHOWN,
    NOW,
    blocks_policy,
    parsed_view,
    request,
    session,
    text_of,
)
from tests.fakes.policy import BOB


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return blocks_policy(Path(tmp_path_factory.mktemp("modals")))


def _ids(view: dict) -> list[str]:
    return [block.get("block_id", block["type"]) for block in view["blocks"]]


def _values(select: dict) -> list[str]:
    return [option["value"] for option in select["options"]]


def test_request_form_first_asks_for_a_system(policy: Policy) -> None:
    view = parsed_view(modals.request_modal(policy))
    assert view["callback_id"] == "request_access"
    assert view["submit"]["text"] == "Request"
    assert _ids(view) == ["system", "context", "ticket", "reason"]
    system = view["blocks"][0]["element"]
    assert system["action_id"] == "system_select"
    assert _values(system) == ["orders-api", "orders-staging", "checkout-db"]
    assert "initial_option" not in system


def test_request_form_with_a_role_offers_its_durations_up_to_its_max(policy: Policy) -> None:
    view = parsed_view(modals.request_modal(policy, "orders-api", "read"))
    assert _ids(view) == [
        "system",
        "role:orders-api",
        "duration:orders-api:read",
        "ticket",
        "reason",
    ]
    role, duration = view["blocks"][1]["element"], view["blocks"][2]["element"]
    assert _values(role) == ["read", "write"]
    assert role["initial_option"]["value"] == "read"
    assert _values(duration)[-1] == "30m"
    assert duration["initial_option"]["value"] == "30m"  # the default 1h is past the max


def test_breakglass_box_only_for_people_on_the_systems_list(policy: Policy) -> None:
    offered = parsed_view(modals.request_modal(policy, "checkout-db", breakglass=True))
    box = offered["blocks"][3]
    assert box["block_id"] == "breakglass:checkout-db"
    assert box["hint"]["text"] == (
        "Granted at once, without approval; approvers review it within 15m."
    )
    assert box["element"]["options"][0]["text"]["text"] == "Incident — grant now"
    not_offered = modals.request_modal(policy, "checkout-db", breakglass=False)
    assert "breakglass:checkout-db" not in _ids(not_offered)
    no_breakglass = modals.request_modal(policy, "orders-api", breakglass=True)
    assert "breakglass:orders-api" not in _ids(no_breakglass)


def test_request_form_limits_are_the_operations_limits(policy: Policy) -> None:
    view = parsed_view(modals.request_modal(policy))
    ticket, reason = view["blocks"][-2]["element"], view["blocks"][-1]["element"]
    assert (ticket["max_length"], reason["max_length"]) == (TICKET_MAX, REASON_MAX)


def test_request_form_for_someone_who_may_request_nothing(policy: Policy) -> None:
    view = parsed_view(modals.request_modal(policy, systems=[]))
    assert "submit" not in view and view["close"]["text"] == "Close"
    assert text_of(view["blocks"][0]) == "You are not on the requesters list of any system."


def test_closeout_modal_names_the_access_and_asks_what_changed() -> None:
    ended = session(request(ticket=HOSTILE))
    view = parsed_view(modals.closeout_modal(ended))
    assert (view["callback_id"], view["private_metadata"]) == ("closeout", "S-4F6H8J2K")
    assert text_of(view["blocks"][0]) == (
        f"Your *write* access to *orders-api* (`S-4F6H8J2K`, ticket {HOSTILE_SHOWN}) has ended."
    )
    assert _ids(view)[1:] == ["changes", "followups"]
    assert view["blocks"][2]["optional"] is True


def test_deny_modal_names_the_requester_and_limits_the_reason() -> None:
    view = parsed_view(modals.deny_modal(request(role_id="<b>")))
    assert (view["callback_id"], view["private_metadata"]) == ("deny", "R-7K3Q9X2M")
    assert text_of(view["blocks"][0]) == (
        f"Deny <@{BOB}>'s request `R-7K3Q9X2M` for *&lt;b&gt;* on *orders-api*?"
    )
    assert view["blocks"][1]["element"]["max_length"] == DENY_REASON_MAX


def test_extend_modal_offers_only_what_the_role_still_allows(policy: Policy) -> None:
    active = session()
    view = parsed_view(modals.extend_modal(policy, active, timedelta(minutes=30)))
    assert (view["callback_id"], view["private_metadata"]) == ("extend", "S-4F6H8J2K")
    assert text_of(view["blocks"][0]).startswith(
        f"Your *write* production access to *Orders API* (`S-4F6H8J2K`) ends "
        f"{slack_date(NOW + timedelta(hours=1))}."
    )
    options = view["blocks"][1]["element"]["options"]
    assert options[-1]["text"]["text"] == "+30m"
    full = parsed_view(modals.extend_modal(policy, active, timedelta(0)))
    assert "submit" not in full
    assert text_of(full["blocks"][-1]) == (
        "This access already has the longest time its role allows."
    )
