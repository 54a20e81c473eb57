"""policy.yml: durations, validation errors that point at the file and line, pure questions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.policy import PolicyError, load_policy
from app.policy_values import format_duration, parse_duration

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("20m", timedelta(minutes=20)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        (" 45M ", timedelta(minutes=45)),
        ("365d", timedelta(days=365)),
    ],
)
def test_durations_in_policy_spelling(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "0m", "10", "1x", "m", "1h 30m", "-5m", "30 minutes"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("366d", "'366d'"),
        ("8761h", "'8761h'"),
        ("1000000000d", "'1000000000d'"),  # past timedelta's own limit (OverflowError)
        ("99999999999999999999h", "'99999999999999999999h'"),
        ("9" * 5000 + "s", "'" + "9" * 29 + "…'"),  # past the 4300 digits int() reads
    ],
)
def test_durations_longer_than_a_year_are_refused_as_too_long(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    assert str(error.value) == f"duration {shown} is too long (at most 365d)"


def test_example_policy_is_valid() -> None:
    policy = load_policy(ROOT / "policy.example.yml")
    checkout = policy.system("checkout-db")
    assert checkout is not None and policy.approver_channel(checkout) == "C0CHECKOUT"
    write = checkout.role("write")
    assert write is not None and policy.max_duration(checkout, write) == timedelta(hours=2)
    assert policy.identity_for(checkout, "U0X", "nina.s@example.com") == "nina.s"
    assert policy.identity_for(checkout, "U0NINA", None) == "nina"  # per-user override


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return path


BASE = """\
defaults:
  approver_channel: C0APPROVALS
systems:
  - id: db
    name: DB
    provider: webhook
    approvers: [U1]
    roles:
      - {id: read, grant: ro}
    email_domains: [example.com]
"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("grant: ro}", "grant: ro, max_duration: soon}"),
            ":9: systems[0].roles[0].max_duration: invalid duration 'soon'",
        ),
        (
            ("approvers: [U1]", "approvers: []"),
            ":7: systems[0].approvers: List should have at least 1 item",
        ),
        (("    name: DB\n", ""), ":4: systems[0].name: Field required"),
        (
            ("provider: webhook", "provider: webhook\n    colour: blue"),
            ":7: systems[0].colour: Extra inputs are not permitted",
        ),
        (
            ("  approver_channel: C0APPROVALS\n", "  approver_channel: null\n"),
            ":3: systems: system 'db' has no approver_channel",
        ),
        (("identity", "identity"), None),
        (
            ("grant: ro}", "grant: ro, max_duration: 1000000000d}"),
            ":9: systems[0].roles[0].max_duration: duration '1000000000d' is too long",
        ),
        (
            ("name: DB", "name: DB\n    identity: '{mail}'"),
            ":6: systems[0].identity: identity template uses ['mail']",
        ),
        (
            ("defaults:", "defaults:\n  ticket_pattern: '[A-'"),
            ":2: defaults.ticket_pattern: ticket_pattern is not a valid regular expression",
        ),
        (
            ("- {id: read, grant: ro}", "- {id: read, grant: ro}\n      - {id: read, grant: rw}"),
            ":8: systems[0].roles: duplicate role id 'read'",
        ),
        (("systems:", "systems: {"), ":4: not valid YAML"),
    ],
)
def test_policy_errors_name_file_line_key_and_reason(
    tmp_path: Path, change: tuple[str, str], expected: str | None
) -> None:
    path = _write(tmp_path, BASE.replace(*change))
    if expected is None:
        load_policy(path)
        return
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    message = str(error.value)
    assert message.startswith(str(path) + ":"), message
    assert expected in message, message


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yml: cannot read policy file"):
        load_policy(tmp_path / "nope.yml")


def test_ticket_check_explains_the_pattern(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, BASE))
    system = policy.system("db")
    assert system is not None
    assert policy.check_ticket(system, "PAY-184") is None
    assert "must match" in (policy.check_ticket(system, "pay 184") or "")
    assert "required" in (policy.check_ticket(system, " ") or "")
