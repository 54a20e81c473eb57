"""`prod-access policy explain` and `policy diff`: explain answers for a requester, an approver
and an outsider, every route, groups expanded only through Slack; diff prints what changes for
whom, grouped by system and role, and marks what widens access. In-process for the answers, and
the commands themselves run once each as a user would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from slack_sdk import WebClient

from app.config import Settings
from app.policy import load_policy
from app.policy_diff import diff_policies, render
from app.policy_explain import ExplainDirectory, explain, explain_context
from app.slack.directory import SlackDirectory
from tests.conftest import run_cli_here
from tests.fakes.slack_api import FakeSlack

POLICY = """\
defaults:
  approver_channel: C0APPROVALS
  max_duration: 2h
  email_domains: [example.com]
systems:
  - id: orders
    name: Orders API
    provider: webhook
    config: {url: 'https://hooks.example.com/orders', secret_env: ORDERS_SECRET}
    identity: '{email_local}'
    approvers: [U0LEAD1, U0LEAD2, '@sre-leads']
    requesters: [U0ALICE, '@eng']
    breakglass: {users: [U0ALICE], max_duration: 1h}
    roles:
      - {id: read, grant: orders-viewer, max_duration: 30m, auto_approve: true}
      - {id: write, grant: orders-admin, approvals_required: 2}
      - {id: deploy, grant: orders-deployer, max_duration: 1h, auto_approve_oncall: P0SCHED}
  - id: orders-staging
    name: Orders staging
    tier: staging
    provider: webhook
    config: {url: 'https://hooks.example.com/staging', secret_env: STAGING_SECRET}
    approvers: [U0LEAD1]
    roles:
      - {id: write, grant: staging-admin}
users:
  U0LEAD2: {identity: lead-two}
"""


def _policy_file(tmp_path: Path, text: str = POLICY, name: str = "policy.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _explain(
    tmp_path: Path,
    user: str,
    system: str,
    role: str | None = None,
    *,
    slack: FakeSlack | None = None,
    email: str | None = None,
) -> dict[str, str]:
    """explain's lines as {label: text}, role lines under "role.label"."""
    directory = SlackDirectory(WebClient(token="xoxb-test", base_url=slack.url)) if slack else None
    ctx = explain_context(
        Settings(), load_policy(_policy_file(tmp_path)), ExplainDirectory(directory, email)
    )
    explained = explain(ctx, user, system, role)
    assert explained.known, explained.lines
    answers, prefix = {"heading": explained.lines[0]}, ""
    for line in explained.lines[1:]:
        if line.startswith("role "):
            prefix = line.split()[1] + "."
        elif line.strip():
            label, _, text = line.strip().partition(":")
            answers[prefix + label] = text.strip()
    return answers


def test_a_requester_may_request_and_break_glass_but_not_approve(tmp_path: Path) -> None:
    answers = _explain(tmp_path, "U0ALICE", "orders", "write", email="alice@example.com")
    assert answers["heading"] == "U0ALICE and orders (Orders API), production"
    assert (
        answers["may request"]
        == "yes (requesters: U0ALICE, @eng (not expanded: no SLACK_BOT_TOKEN))"
    )
    assert answers["break-glass"].startswith("yes (breakglass.users: U0ALICE); granted at once")
    assert "for at most 1h" in answers["break-glass"]
    assert answers["identity"] == "alice ({email_local} of alice@example.com)"
    assert answers["write.may approve"] == (
        "not by name; only as a member of @sre-leads (system approvers: U0LEAD1, U0LEAD2, "
        "@sre-leads (not expanded: no SLACK_BOT_TOKEN))"
    )
    assert answers["write.approvals"] == "2 (each by a different approver, never by the requester)"
    assert answers["write.route"] == "the approvers decide (2 approval(s))"
    assert answers["write.durations"] == "15m, 30m, 1h, 2h (max 2h)"
    assert answers["write.grant"] == "orders-admin through the webhook provider"


def test_an_approver_may_approve_and_has_the_identity_of_users(tmp_path: Path) -> None:
    answers = _explain(tmp_path, "U0LEAD2", "orders", "write")
    assert answers["write.may approve"].startswith("yes (system approvers: U0LEAD1, U0LEAD2")
    assert answers["identity"] == "lead-two (override under users:)"
    assert answers["may request"].startswith("not by name; only as a member of @eng")


def test_an_outsider_is_told_no_once_groups_are_expanded_through_slack(
    tmp_path: Path, slack: FakeSlack
) -> None:
    slack.groups = {
        "eng": {"id": "S0ENG", "users": ["U0BOB"]},
        "sre-leads": {"id": "S0SRE", "users": ["U0LEAD1"]},
    }
    outsider = _explain(tmp_path, "U0MALLORY", "orders", "write", slack=slack)
    assert outsider["may request"] == "no (requesters: U0ALICE, @eng (U0BOB))"
    assert outsider["write.may approve"] == (
        "no (system approvers: U0LEAD1, U0LEAD2, @sre-leads (U0LEAD1))"
    )
    assert outsider["break-glass"].startswith("no (breakglass.users: U0ALICE)")
    member = _explain(tmp_path, "U0BOB", "orders", "write", slack=slack)
    assert member["may request"] == "yes (requesters: U0ALICE, @eng (U0BOB))"
    assert member["identity"] == "bob ({email_local} of bob@example.com)"  # Slack's email


def test_an_identity_from_an_email_outside_the_domains_is_refused_as_the_bot_would(
    tmp_path: Path,
) -> None:
    answers = _explain(tmp_path, "U0ALICE", "orders", email="svc_orders@evil.test")
    assert answers["identity"].startswith("none: your Slack email (svc_orders@evil.test) is not")
    offline = _explain(tmp_path, "U0ALICE", "orders")
    assert "not looked up: no SLACK_BOT_TOKEN" in offline["identity"]


def test_each_route_as_the_bot_decides_it(tmp_path: Path) -> None:
    answers = _explain(tmp_path, "U0ALICE", "orders")
    assert answers["read.route"] == (
        "auto: approved at once (auto_approve for read), still time-bound and audited"
    )
    assert answers["read.approvals"] == "none needed (the route approves)"
    assert answers["write.route"] == "the approvers decide (2 approval(s))"
    assert answers["deploy.route"] == (
        "on call: approved at once when U0ALICE is on call in PagerDuty schedule P0SCHED at the "
        "time of asking; otherwise the approvers decide"
    )
    staging = _explain(tmp_path, "U0ALICE", "orders-staging")
    assert staging["write.route"] == (
        "staging: approved at once (tier: staging), still time-bound and audited"
    )
    assert staging["may request"] == "yes (no requesters list: everybody may)"
    assert staging["break-glass"] == "orders-staging has none"


def test_an_unknown_system_or_role_names_the_known_ones(tmp_path: Path) -> None:
    ctx = explain_context(Settings(), load_policy(_policy_file(tmp_path)), ExplainDirectory(None))
    unknown = explain(ctx, "U0ALICE", "orders", "admin")
    assert (unknown.known, unknown.lines) == (
        False,
        ["orders has no role 'admin'; it has: read, write, deploy"],
    )
    assert explain(ctx, "U0ALICE", "billing", None).lines == [
        "no system 'billing' in the policy; it has: orders, orders-staging"
    ]


def test_explain_command_expands_groups_with_a_bot_token(tmp_path: Path, slack: FakeSlack) -> None:
    slack.groups = {"eng": {"id": "S0ENG", "users": ["U0BOB"]}}
    _policy_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLICY_"))}
    env |= {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": slack.url}
    result = run_cli_here(
        tmp_path, env, "policy", "explain", "--user", "U0BOB", "--system", "orders"
    )
    assert result.returncode == 0, result.stderr
    assert "may request:      yes (requesters: U0ALICE, @eng (U0BOB))" in result.stdout
    assert "role deploy (write)" in result.stdout
    missing = run_cli_here(tmp_path, env, "policy", "explain", "--user", "U0BOB", "--system", "x")
    assert missing.returncode == 1


NEW = (
    POLICY.replace("max_duration: 2h", "max_duration: 4h")
    .replace("approvers: [U0LEAD1, U0LEAD2, '@sre-leads']", "approvers: [U0LEAD1, U0NEW]")
    .replace("requesters: [U0ALICE, '@eng']", "requesters: [U0ALICE, '@eng', '@contractors']")
    .replace("approvals_required: 2}", "approvals_required: 1}")
    .replace("      - {id: deploy, grant: orders-deployer, max_duration: 1h, "
             "auto_approve_oncall: P0SCHED}\n", "")
    .replace("    tier: staging\n", "")
    .replace("U0LEAD2: {identity: lead-two}", "U0LEAD2: {identity: root}")
)  # fmt: skip

EXPECTED_DIFF = """\
13 change(s), 9 giving wider access

whole policy
  defaults.max_duration: 2h → 4h  (wider access)
  identity override of U0LEAD2: lead-two → root  (wider access)

orders
  requesters: + @contractors  (wider access)
  approvers: + U0NEW  (wider access)
  approvers: - U0LEAD2, @sre-leads

orders deploy
  role removed

orders write
  max_duration: 2h → 4h  (wider access)
  max_total: 4h → 8h  (wider access)
  approvals_required: 2 → 1  (wider access)

orders-staging
  tier: staging → production

orders-staging write
  max_duration: 2h → 4h  (wider access)
  max_total: 4h → 8h  (wider access)
  route: staging (staging tier) → approvers
"""


def test_diff_says_what_changes_for_whom_by_system_and_role(tmp_path: Path) -> None:
    old = load_policy(_policy_file(tmp_path, POLICY, "old.yml"))
    new = load_policy(_policy_file(tmp_path, NEW, "new.yml"))
    assert render(diff_policies(old, new)) == EXPECTED_DIFF
    back = render(diff_policies(new, old))
    assert (
        "orders deploy\n  role added: grant orders-deployer, write, max 1h, 1 approval(s)" in back
    )
    assert "route oncall (P0SCHED)  (wider access)" in back
    assert "tier: production → staging  (wider access)" in back


def test_diff_of_added_and_removed_systems(tmp_path: Path) -> None:
    old = load_policy(_policy_file(tmp_path, POLICY, "old.yml"))
    without_staging = (
        POLICY[: POLICY.index("  - id: orders-staging")] + POLICY[POLICY.index("\nusers:") + 1 :]
    )
    new = load_policy(_policy_file(tmp_path, without_staging, "new.yml"))
    assert render(diff_policies(old, new)).splitlines()[-2:] == [
        "orders-staging",
        "  system removed (roles write)",
    ]
    assert "system added: Orders staging, webhook, roles write (max 2h)" in render(
        diff_policies(new, old)
    )


@pytest.mark.parametrize(("flag", "code"), [((), 0), (("--exit-code",), 1)])
def test_diff_command_exit_codes(tmp_path: Path, flag: tuple[str, ...], code: int) -> None:
    _policy_file(tmp_path, POLICY, "old.yml")
    _policy_file(tmp_path, NEW, "new.yml")
    result = run_cli_here(tmp_path, dict(os.environ), "policy", "diff", "old.yml", "new.yml", *flag)
    assert (result.returncode, result.stdout) == (code, EXPECTED_DIFF)
    same = run_cli_here(tmp_path, dict(os.environ), "policy", "diff", "old.yml", "old.yml", *flag)
    assert (same.returncode, same.stdout) == (0, "no changes in what the policy allows\n")


def test_diff_of_an_invalid_policy_says_where_and_exits_2(tmp_path: Path) -> None:
    _policy_file(tmp_path, POLICY, "old.yml")
    _policy_file(tmp_path, POLICY.replace("max_duration: 30m", "max_duration: soon"), "new.yml")
    result = run_cli_here(tmp_path, dict(os.environ), "policy", "diff", "old.yml", "new.yml")
    assert result.returncode == 2
    assert result.stderr.startswith("prod-access: new.yml:15: systems[0].roles[0].max_duration:")
