"""The request form checked against the policy, on its own (no database, no Slack): what a
requester reads under each field of the modal, or in the quick form's reply."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.operations.errors import InvalidRequest
from app.operations.request_access import REASON_MAX, TICKET_MAX, RequestForm, validate
from app.policy import Policy, load_policy
from tests.fakes.policy import BOB, write_policy

BREAKGLASS = f"""\
  - id: payments-db
    name: Payments DB
    provider: webhook
    config: {{url: 'http://127.0.0.1:9', secret_env: TEST_WEBHOOK_SECRET}}
    identity: '{{email}}'
    approvers: [U0LEAD1]
    breakglass: {{users: [{BOB}], max_duration: 1h}}
    roles:
      - {{id: write, grant: payments-admin, max_duration: 4h}}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("policy") / "policy.yml"
    return load_policy(write_policy(path, "http://127.0.0.1:9", extra_systems=BREAKGLASS))


def form(**fields: object) -> RequestForm:
    given: dict[str, object] = {
        "system": "orders-api",
        "role": "read",
        "duration": "20m",
        "ticket": "PAY-1",
        "reason": "look at the failed orders",
    }
    return RequestForm(**{**given, **fields})  # type: ignore[arg-type]


def errors_of(policy: Policy, request: RequestForm) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as refused:
        validate(policy, request)
    return refused.value.errors


def test_a_good_form_is_the_request_the_policy_allows(policy: Policy) -> None:
    valid = validate(policy, form(system=" orders-api ", ticket=" PAY-1 ", reason=" look "))
    assert (valid.system, valid.role, valid.duration) == (
        "orders-api",
        "read",
        timedelta(minutes=20),
    )
    assert (valid.ticket, valid.reason, valid.breakglass) == ("PAY-1", "look", False)


def test_an_unknown_system_names_the_ones_this_person_may_request(policy: Policy) -> None:
    assert errors_of(policy, form(system="billing")) == {
        "system": "Unknown system 'billing'. Systems you can request: orders-api, payments-db."
    }
    visible = [policy.systems[0]]
    with pytest.raises(InvalidRequest) as refused:
        validate(policy, form(system="payments-db"), visible)
    assert refused.value.errors["system"].endswith("Systems you can request: orders-api.")


def test_an_unknown_role_names_the_roles_of_the_system(policy: Policy) -> None:
    assert errors_of(policy, form(role="admin")) == {
        "role": "Unknown access 'admin' for orders-api. Choose one of: read, write."
    }


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("soon", "Invalid duration 'soon' (use e.g. 30s, 20m, 1h, 1h30m, 2d)."),
        ("0m", "Duration '0m' must be longer than zero."),
        ("45m", "45m is longer than the 30m allowed for orders-api read."),
    ],
)
def test_a_bad_duration_says_what_would_do(policy: Policy, duration: str, message: str) -> None:
    assert errors_of(policy, form(duration=duration)) == {"duration": message}


def test_break_glass_has_its_own_limit_and_only_where_the_policy_offers_it(
    policy: Policy,
) -> None:
    glass = form(system="payments-db", role="write", duration="2h", breakglass=True)
    assert errors_of(policy, glass) == {
        "duration": "2h is longer than the 1h allowed for break-glass payments-db write."
    }
    assert validate(policy, form(system="payments-db", role="write", duration="2h"))
    assert errors_of(policy, form(breakglass=True)) == {
        "breakglass": "orders-api has no break-glass; send the request without it for approval."
    }


def test_ticket_and_reason_are_checked_and_every_problem_is_told_at_once(
    policy: Policy,
) -> None:
    errors = errors_of(policy, form(duration="3h", ticket="see slack", reason="   "))
    assert set(errors) == {"duration", "ticket", "reason"}
    assert errors["reason"] == "Say what you need the access for."
    assert errors["ticket"] == "Ticket must match ^[A-Z][A-Z0-9]+-\\d+$ (e.g. PAY-184 or INC-7)."


def test_overlong_ticket_and_reason_are_refused_with_the_limit(policy: Policy) -> None:
    errors = errors_of(
        policy, form(ticket="PAY-" + "1" * TICKET_MAX, reason="x" * (REASON_MAX + 1))
    )
    assert errors == {
        "ticket": f"Ticket is too long (at most {TICKET_MAX} characters).",
        "reason": f"Reason is too long (at most {REASON_MAX} characters).",
    }
