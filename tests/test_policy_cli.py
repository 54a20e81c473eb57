"""`prod-access policy check` as a policy repository's CI runs it: every problem with its file,
line and key, the reviewer checks one by one (with their severity), `--json`, `--format
github`, `--strict`, and the command itself run as a user would (no settings, no database, no
Slack). Most cases call the check in-process (fast); a few run `python -m app`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.cli_policy import annotation, check
from app.policy import PolicyError, load_policy
from app.policy_check import Finding, check_policy_file
from tests.conftest import run_cli_here

GOOD = """\
defaults:
  approver_channel: C0APPROVALS
  max_duration: 2h
  email_domains: [example.com]
systems:
  - id: orders
    name: Orders API
    provider: webhook
    config: {url: 'https://hooks.example.com/orders', secret_env: ORDERS_SECRET}
    approvers: [U0LEAD1, U0LEAD2]
    requesters: [U0ALICE, U0BOB]
    breakglass: {users: [U0ALICE]}
    roles:
      - {id: read, grant: orders-viewer, max_duration: 30m}
      - {id: write, grant: orders-admin, max_duration: 2h}
users:
  U0ALICE: {identity: alice}
"""


def _write(tmp_path: Path, text: str, name: str = "policy.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _found(tmp_path: Path, text: str) -> list[tuple[int | None, str | None, str]]:
    """(line, key, severity) of every finding, in order."""
    return [(f.line, f.key, f.severity) for f in check_policy_file(_write(tmp_path, text))]


def _env() -> dict[str, str]:
    """The environment without any prod-access setting: the check needs none."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DATABASE_", "POLICY_", "PAGERDUTY_"))
    }


def test_a_good_policy_has_no_findings(tmp_path: Path) -> None:
    assert check_policy_file(_write(tmp_path, GOOD)) == []
    load_policy(tmp_path / "policy.yml")  # and the bot starts with it


SEVERAL_PROBLEMS = """\
defaults:
  approver_channel: C0APPROVALS
  max_duration: 2h
  colour: blue
  email_domains: [example.com]
systems:
  - id: orders
    name: Orders API
    tier: prod
    provider: webhook
    config: {url: 'https://hooks.example.com/orders', secret_env: ORDERS_SECRET}
    approvers: [U0LEAD1, U0LEAD2]
    roles:
      - {id: read, grant: orders-viewer, max_duration: soon}
      - {id: write, grant: orders-admin, max_duration: 4h}
  - id: orders
    provider: no-such-provider
    approvers: [U0LEAD1]
    roles:
      - {id: read, grant: x}
users:
  u0alice: {identity: alice}
"""


def test_every_problem_is_reported_with_its_line_and_key(tmp_path: Path) -> None:
    assert _found(tmp_path, SEVERAL_PROBLEMS) == [
        (4, "defaults.colour", "error"),
        (9, "systems[0].tier", "error"),
        (14, "systems[0].roles[0].max_duration", "error"),
        (15, "systems[0].roles[1].max_duration", "warning"),  # the valid rest is reviewed
        (16, "systems[1].name", "error"),  # missing: the line of the system
        (16, "systems[1].id", "error"),
        (17, "systems[1].provider", "error"),
        (22, "users.u0alice", "error"),
    ]


@pytest.mark.parametrize(
    ("change", "line", "key", "reason"),
    [
        (("grant: orders-viewer, max_duration: 30m}", "grant: x, max_duration: soon}"), 14,
         "systems[0].roles[0].max_duration", "invalid duration 'soon'"),
        (("approvers: [U0LEAD1, U0LEAD2]", "approvers: []"), 10, "systems[0].approvers",
         "List should have at least 1 item"),
        (("  approver_channel: C0APPROVALS\n", ""), 4, "systems",
         "system 'orders' has no approver_channel"),
        (("  email_domains: [example.com]\n", "  email_domains: [example.com]\n  colour: x\n"),
         5, "defaults.colour", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_what_start_up_refuses_is_reported_in_start_ups_words(
    tmp_path: Path, change: tuple[str, str], line: int, key: str, reason: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    findings = check_policy_file(path)
    assert str(refused.value) in [str(f) for f in findings]
    assert (findings[0].line, findings[0].key) == (line, key)
    assert reason in findings[0].reason


# Each reviewer check on its own: (change to GOOD, expected (line, key, severity), a phrase).
REVIEWER_CHECKS = {
    "approvers that can never reach approvals_required": (
        (("[U0LEAD1, U0LEAD2]", "[U0LEAD1, U0LEAD1]"),
         ("max_duration: 2h}", "max_duration: 2h, approvals_required: 2}")),
        [(10, "systems[0].approvers", "warning"),
         (15, "systems[0].roles[1].approvals_required", "error")],
        "needs 2 approvals but has 1 distinct approver(s) (U0LEAD1)",
    ),
    "a requester who is the only approver": (
        ("approvers: [U0LEAD1, U0LEAD2]", "approvers: [U0ALICE]"),
        [(10, "systems[0].approvers", "warning")],
        "U0ALICE is the only approver of orders read, write and is a requester: their own "
        "requests can never be approved",
    ),
    "a role longer than defaults.max_duration": (
        ("max_duration: 2h}", "max_duration: 4h}"),
        [(15, "systems[0].roles[1].max_duration", "warning")],
        "4h is longer than defaults.max_duration (2h)",
    ),
    "a break-glass user who may not request": (
        ("breakglass: {users: [U0ALICE]}", "breakglass: {users: [U0MALLORY]}"),
        [(12, "systems[0].breakglass.users[0]", "error")],
        "U0MALLORY may break glass on orders but is not in its requesters",
    ),
    "a break-glass group that may or may not request": (
        ("breakglass: {users: [U0ALICE]}", "breakglass: {users: ['@oncall']}"),
        [(12, "systems[0].breakglass.users[0]", "warning")],
        "depends on user group members",
    ),
    "a duplicate system id": (
        ("\nusers:", "\n  - {id: orders, name: O, provider: webhook, approvers: [U0LEAD1, "
         "U0LEAD2], config: {url: 'https://h.example.com', secret_env: S}, "
         "roles: [{id: r, grant: g}]}\nusers:"),
        [(16, "systems[1].id", "error")],
        "duplicate system id 'orders'",
    ),
    "a duplicate role id": (
        ("{id: write,", "{id: read,"),
        [(15, "systems[0].roles[1].id", "error")],
        "duplicate role id 'read'",
    ),
    "a key written twice": (
        ("  U0ALICE: {identity: alice}\n", "  U0ALICE: {identity: alice}\n  U0ALICE: {"
         "identity: root}\n"),
        [(18, "users.U0ALICE", "error")],
        "written twice in one mapping (first at line 17)",
    ),
    "a users: key that is no Slack user id": (
        ("U0ALICE: {identity", "alice: {identity"),
        [(17, "users.alice", "error")],
        "'alice' is not a Slack user id",
    ),
    "an unused *_env key": (
        ("secret_env: ORDERS_SECRET}", "secret_env: ORDERS_SECRET, dsn_env: ORDERS_DSN}"),
        [(9, "systems[0].config.dsn_env", "error")],
        "the webhook provider reads no dsn_env (it reads secret_env)",
    ),
    "a secret pasted where its variable's name belongs": (
        ("secret_env: ORDERS_SECRET", "secret_env: 'hunter2 is my secret'"),
        [(9, "systems[0].config.secret_env", "error")],
        "must name an environment variable",
    ),
    "an identity from an email without email_domains": (
        ("  email_domains: [example.com]\n", ""),
        [(5, "systems[0].identity", "error")],  # not written: the system's line
        "derives the identity from the Slack email",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(REVIEWER_CHECKS))
def test_each_reviewer_check_on_its_own(tmp_path: Path, name: str) -> None:
    change, expected, phrase = REVIEWER_CHECKS[name]
    text = GOOD
    for old, new in change if isinstance(change[0], tuple) else [change]:
        text = text.replace(old, new)
    assert text != GOOD
    findings = check_policy_file(_write(tmp_path, text))
    assert [(f.line, f.key, f.severity) for f in findings] == expected, findings
    assert any(phrase in f.reason for f in findings), [f.reason for f in findings]


def test_a_pasted_secret_is_never_repeated(tmp_path: Path) -> None:
    text = GOOD.replace("secret_env: ORDERS_SECRET", "secret_env: 'postgresql://a:hunter2@db'")
    findings = check_policy_file(_write(tmp_path, text))
    assert findings and not any("hunter2" in str(f) for f in findings)


def test_a_variable_of_env_example_that_nothing_reads_is_a_warning(tmp_path: Path) -> None:
    _write(
        tmp_path, "# provider secrets\nSLACK_BOT_TOKEN=\nORDERS_SECRET=\nOLD_DSN=\n", ".env.example"
    )
    findings = check_policy_file(_write(tmp_path, GOOD))
    assert [(Path(f.file).name, f.line, f.key, f.severity) for f in findings] == [
        (".env.example", 4, "OLD_DSN", "warning")
    ]


def test_the_repositorys_example_policy_passes_even_strict() -> None:
    """The policy people copy first passes what the README tells a policy repository to run."""
    root = Path(__file__).resolve().parents[1]
    assert check_policy_file(root / "policy.example.yml") == []


def test_warnings_fail_only_with_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD.replace("max_duration: 2h}", "max_duration: 4h}"))
    assert check([str(path)], "text", strict=False) == 0
    assert check([str(path)], "text", strict=True) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{path}:15: systems[0].roles[1].max_duration: warning: 4h is longer than "
        "defaults.max_duration (2h)"
    )
    assert out[1] == f"{path}: 0 error(s), 1 warning(s)"


def test_github_annotations_escape_what_github_reads() -> None:
    finding = Finding("p,1.yml", 3, "systems[0].x", "bad: 50%\nnext", "warning")
    assert annotation(finding) == (
        "::warning file=p%2C1.yml,line=3,title=systems[0].x::bad: 50%25%0Anext"
    )


def test_check_reads_policy_yml_of_the_current_directory_and_nothing_else(
    tmp_path: Path,
) -> None:
    """No setting, no database, no Slack: a good file prints its summary and exits 0."""
    _write(tmp_path, GOOD)
    (tmp_path / ".env").write_text("PORT=not-a-port\n")  # a broken setting: not read
    result = run_cli_here(tmp_path, _env(), "policy", "check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "policy.yml: OK\n", "")
    assert not (tmp_path / "prod-access.db").exists()


def test_check_reads_policy_file_when_set(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "access.yml")
    result = run_cli_here(tmp_path, {**_env(), "POLICY_FILE": "access.yml"}, "policy", "check")
    assert (result.returncode, result.stdout) == (0, "access.yml: OK\n")


def test_check_json_lists_every_finding_and_exits_1(tmp_path: Path) -> None:
    _write(tmp_path, GOOD.replace("30m}", "soon}").replace("[U0ALICE]}", "[U0MALLORY]}"))
    result = run_cli_here(tmp_path, _env(), "policy", "check", "--json", "policy.yml")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == [
        {
            "file": "policy.yml",
            "line": 12,
            "key": "systems[0].breakglass.users[0]",
            "reason": "U0MALLORY may break glass on orders but is not in its requesters: the "
            "bot refuses their request before it looks at break-glass (add them to requesters)",
            "severity": "error",
        },
        {
            "file": "policy.yml",
            "line": 14,
            "key": "systems[0].roles[0].max_duration",
            "reason": "invalid duration 'soon' (use e.g. 30s, 20m, 1h, 1h30m, 2d)",
            "severity": "error",
        },
    ]


def test_check_of_several_files_and_a_missing_one(tmp_path: Path) -> None:
    _write(tmp_path, GOOD)
    result = run_cli_here(
        tmp_path, _env(), "policy", "check", "--format", "github", "policy.yml", "gone.yml"
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "::error file=gone.yml::cannot read policy file: No such file or directory",
        "policy.yml: OK",
        "gone.yml: 1 error(s), 0 warning(s)",
    ]
