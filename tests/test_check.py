"""`prod-access check` as an operator runs it (`python -m app check`), against the fake Slack
Web API, a real webhook target, the real PostgreSQL test server, fake GitHub, Okta and
PagerDuty servers on localhost, and (in-process, under moto) AWS: every line says OK or what
is wrong and what to do, the exit status is 1 on any problem, and nothing is posted or granted.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.policy import Role
from tests.conftest import SIGNING_SECRET, WEBHOOK_SECRET, run_cli_here, write_policy
from tests.fakes.github_api import FakeGitHub
from tests.fakes.local_server import Reply, Request
from tests.fakes.okta_api import FakeOkta
from tests.fakes.pagerduty_api import FakePagerDuty
from tests.fakes.postgres import PostgresServer
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

BOT_TOKEN = "xoxb-check-test-0123456789"
GITHUB_TOKEN = "ghp_check0123456789abcdef"
OKTA_TOKEN = "00okta-check-0123456789"
PAGERDUTY_TOKEN = "pd-check-token-0123456789"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> dict[str, str]:
    write_policy(tmp_path / "policy.yml", webhook.url)
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DATABASE_", "PAGERDUTY_", "AWS_"))
    }
    return {
        **clean,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        "POLICY_FILE": str(tmp_path / "policy.yml"),
        "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


class Report:
    """What `prod-access check` printed: the table's rows by check name, and the exit code."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr
        lines = stdout.splitlines()
        assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"], stdout
        status_at = lines[0].index("STATUS")
        detail_at = lines[0].index("DETAIL")
        self.rows: dict[str, tuple[str, str]] = {}
        for line in lines[1:-1]:
            check = line[:status_at].strip()
            self.rows[check] = (line[status_at:detail_at].strip(), line[detail_at:].strip())
        self.summary = lines[-1]

    def status(self, check: str) -> str:
        assert check in self.rows, f"no line {check!r} in:\n{self.stdout}"
        return self.rows[check][0]

    def detail(self, check: str) -> str:
        assert check in self.rows, f"no line {check!r} in:\n{self.stdout}"
        return self.rows[check][1]


def check(tmp_path: Path, env: dict[str, str], *args: str) -> Report:
    """`prod-access check` run in this process (test_json_lines_carry_the_same_results runs
    the real command)."""
    result = run_cli_here(tmp_path, env, "check", *args)
    assert result.returncode in (0, 1), result.stderr
    return Report(result.returncode, result.stdout, result.stderr)


def add_systems(env: dict[str, str], systems: str) -> Path:
    """Append systems (a YAML list, any indentation) to the test policy's `systems:`."""
    policy = Path(env["POLICY_FILE"])
    policy.write_text(policy.read_text() + textwrap.indent(textwrap.dedent(systems), "  "))
    return policy


# --- all well -------------------------------------------------------------------------


def test_a_healthy_deployment_is_all_ok_and_exits_0(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    report = check(tmp_path, env)
    assert report.code == 0, report.stdout
    assert report.status("settings") == "OK"
    assert report.detail("settings") == "complete for HTTP mode (SLACK_SIGNING_SECRET)"
    assert report.detail("policy") == f"{env['POLICY_FILE']}: 1 system(s), 2 role(s)"
    assert report.detail("slack auth.test") == "team Fake Team (T0TEAM), bot @prod-access (U0BOT)"
    assert report.detail("slack channel C0APPROVALS") == (
        "#approvals: the bot is a member (approvers of orders-api)"
    )
    assert report.status("provider orders-api (webhook)") == "OK"
    assert report.detail("provider orders-api (webhook)") == "reachable (GET answered HTTP 200)"
    assert report.summary == "all 6 checks OK"
    # nothing was posted, and the webhook got a plain GET, never a signed grant or revoke
    assert [c.method for c in slack.calls] == ["auth.test", "conversations.info"]
    assert [(r.body, r.signature_valid) for r in webhook.requests] == [({}, False)]
    assert webhook.held() == set()


def test_json_lines_carry_the_same_results(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cli_here(tmp_path, env, "check", "--json")
    assert result.returncode == 0, result.stdout
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["check"] for row in rows] == [
        "settings",
        "policy",
        "open sessions",
        "slack auth.test",
        "slack channel C0APPROVALS",
        "provider orders-api (webhook)",
    ]
    assert {row["status"] for row in rows} == {"OK"}


# --- Slack ------------------------------------------------------------------------------


def test_a_token_slack_refuses_is_a_problem_with_the_hint(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    slack.fail("auth.test", "invalid_auth")
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.status("slack auth.test") == "PROBLEM"
    assert report.detail("slack auth.test") == "Slack answered invalid_auth: check SLACK_BOT_TOKEN"
    assert report.status("provider orders-api (webhook)") == "OK"  # the rest still ran
    assert "slack channel C0APPROVALS" not in report.rows
    assert report.summary == "1 problem(s) in 5 checks"
    assert BOT_TOKEN not in report.stdout + report.stderr


def test_unreachable_slack_names_the_url(tmp_path: Path, env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api/"
    report = check(tmp_path, {**env, "SLACK_API_URL": url})
    assert report.code == 1
    assert report.detail("slack auth.test").startswith(f"Slack unreachable at {url}: ")
    assert report.detail("slack auth.test").endswith("check SLACK_API_URL and the network")


def test_library_log_lines_stay_off_the_table_and_quiet_unless_debug(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """slack_sdk logs "Failed to send a request to Slack API server" at ERROR for each try; the
    table already says Slack is unreachable, so at the default LOG_LEVEL nothing else is
    printed, and with LOG_LEVEL=debug those lines go to stderr, never into the table."""
    env = {**env, "SLACK_API_URL": f"http://127.0.0.1:{_closed_port()}/api/", "LOG_FORMAT": "json"}
    quiet = check(tmp_path, env)
    assert quiet.code == 1
    assert quiet.stderr == ""
    assert [line.split()[0] for line in quiet.stdout.splitlines()[1:-1]] == [
        "settings",
        "policy",
        "open",
        "slack",
        "provider",
    ]
    loud = check(tmp_path, {**env, "LOG_LEVEL": "debug"})
    assert "Failed to send a request to Slack API server" in loud.stderr
    assert loud.stdout == quiet.stdout


def test_bot_missing_from_the_approver_channel_is_told_how_to_invite_it(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    slack.channels["C0APPROVALS"]["is_member"] = False
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.status("slack channel C0APPROVALS") == "PROBLEM"
    assert report.detail("slack channel C0APPROVALS") == (
        "the bot is not in #approvals (approvers of orders-api): "
        "invite the bot: /invite @prod-access in #approvals"
    )
    assert report.summary == "1 problem(s) in 6 checks"


def test_every_distinct_approver_channel_is_checked_once(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    add_systems(
        env,
        f"""\
          - id: billing
            name: Billing
            provider: webhook
            config: {{url: '{webhook.url}', secret_env: TEST_WEBHOOK_SECRET}}
            approvers: [U0LEAD1]
            approver_channel: C0NOSUCH
            roles: [{{id: read, grant: billing-viewer}}]
          - id: ledger
            name: Ledger
            provider: webhook
            config: {{url: '{webhook.url}', secret_env: TEST_WEBHOOK_SECRET}}
            approvers: [U0LEAD1]
            approver_channel: C0ARCHIVED
            roles: [{{id: read, grant: ledger-viewer}}]
          - id: search
            name: Search
            provider: webhook
            config: {{url: '{webhook.url}', secret_env: TEST_WEBHOOK_SECRET}}
            approvers: [U0LEAD1]
            roles: [{{id: read, grant: search-viewer}}]
        """,
    )
    slack.channels["C0ARCHIVED"] = {"name": "old-approvals", "is_member": True, "is_archived": True}
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.detail("slack channel C0APPROVALS") == (
        "#approvals: the bot is a member (approvers of orders-api, approvers of search)"
    )
    assert report.detail("slack channel C0NOSUCH") == (
        "channel_not_found (approvers of billing): use the channel's id (C…); a private "
        "channel must invite the bot first: /invite @prod-access"
    )
    assert report.detail("slack channel C0ARCHIVED") == (
        "#old-approvals is archived (approvers of ledger): pick another channel"
    )
    asked = [args["channel"] for args in slack.calls_to("conversations.info")]
    assert sorted(asked) == ["C0APPROVALS", "C0ARCHIVED", "C0NOSUCH"]


# --- settings and policy ----------------------------------------------------------------


def test_a_bad_policy_file_is_a_problem_with_file_and_line_and_slack_is_still_checked(
    tmp_path: Path, env: dict[str, str]
) -> None:
    policy = Path(env["POLICY_FILE"])
    text = policy.read_text().replace("max_duration: 30m", "max_duration: 30 minutes")
    policy.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "30 minutes" in row)
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.status("policy") == "PROBLEM"
    assert report.detail("policy") == (
        f"{policy}:{line}: systems[0].roles[0].max_duration: "
        "invalid duration '30 minutes' (use e.g. 30s, 20m, 1h, 1h30m, 2d)"
    )
    assert report.status("slack auth.test") == "OK"


def test_bad_and_missing_settings_are_problems_and_the_rest_still_runs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env = {k: v for k, v in env.items() if k != "SLACK_SIGNING_SECRET"}
    report = check(tmp_path, {**env, "LOG_FORMAT": "xml", "PORT": "http"})
    assert report.code == 1
    settings = [line for line in report.stdout.splitlines() if line.startswith("settings")]
    assert len(settings) == 3 and all(" PROBLEM " in line for line in settings), report.stdout
    assert settings[0].endswith(
        "PORT is invalid: Input should be a valid integer, unable to parse string as an integer"
    )
    assert "  LOG_FORMAT is invalid: Input should be " in settings[1]
    assert settings[2].endswith(
        "neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET (HTTP mode) is set"
    )
    assert report.status("policy") == "OK"
    assert report.status("slack auth.test") == "OK"


def test_without_a_usable_bot_token_slack_is_skipped_and_said_so(
    tmp_path: Path, env: dict[str, str], slack: FakeSlack
) -> None:
    env = {k: v for k, v in env.items() if k != "SLACK_BOT_TOKEN"}
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.detail("settings") == "SLACK_BOT_TOKEN is not set (see .env.example)"
    assert report.detail("slack auth.test") == "skipped: no usable SLACK_BOT_TOKEN"
    user_token = "xoxp-a-user-token-0123456789"
    report = check(tmp_path, {**env, "SLACK_BOT_TOKEN": user_token})
    assert report.code == 1
    assert report.detail("settings") == (
        "SLACK_BOT_TOKEN is invalid: must be a bot token starting with xoxb-"
    )
    assert report.detail("slack auth.test") == "skipped: no usable SLACK_BOT_TOKEN"
    assert user_token not in report.stdout + report.stderr
    assert slack.calls == []


# --- providers --------------------------------------------------------------------------


def test_a_webhook_target_that_is_down_names_the_system(
    tmp_path: Path, env: dict[str, str], webhook: WebhookReceiver
) -> None:
    down = f"http://127.0.0.1:{_closed_port()}/hook"
    add_systems(
        env,
        f"""\
          - id: payments
            name: Payments
            provider: webhook
            config: {{url: '{down}', secret_env: TEST_WEBHOOK_SECRET}}
            approvers: [U0LEAD1]
            roles: [{{id: read, grant: payments-viewer}}]
        """,
    )
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.status("provider payments (webhook)") == "PROBLEM"
    assert report.detail("provider payments (webhook)").startswith(
        f"webhook unreachable at {down}: "
    )
    assert report.status("provider orders-api (webhook)") == "OK"


def test_a_webhook_target_answering_5xx_is_a_problem_but_4xx_proves_it_is_there(
    tmp_path: Path, env: dict[str, str], webhook: WebhookReceiver
) -> None:
    webhook.respond_with(503)
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.detail("provider orders-api (webhook)").startswith("webhook answered HTTP 503")
    webhook.respond_with(405)
    report = check(tmp_path, env)
    assert report.code == 0
    assert report.detail("provider orders-api (webhook)") == "reachable (GET answered HTTP 405)"


def test_provider_config_errors_name_file_and_line_and_other_systems_are_probed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    policy = add_systems(
        env,
        """\
          - id: checkout-db
            name: Checkout DB
            provider: postgres
            config: {dsn_env: CHECK_TEST_UNSET_DSN}
            approvers: [U0LEAD1]
            roles: [{id: read, grant: checkout_read}]
          - id: pigeons
            name: Pigeons
            provider: carrier-pigeon
            approvers: [U0LEAD1]
            roles: [{id: read, grant: coo}]
        """,
    )
    lines = policy.read_text().splitlines()
    config_line = next(i for i, row in enumerate(lines, 1) if "CHECK_TEST_UNSET_DSN" in row)
    provider_line = next(i for i, row in enumerate(lines, 1) if "carrier-pigeon" in row)
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.detail("provider checkout-db (postgres)") == (
        f"{policy}:{config_line}: systems[1].config: "
        "environment variable CHECK_TEST_UNSET_DSN is not set"
    )
    assert report.detail("provider pigeons (carrier-pigeon)").startswith(
        f"{policy}:{provider_line}: systems[2].provider: unknown provider 'carrier-pigeon'"
    )
    assert report.status("provider orders-api (webhook)") == "OK"


def test_postgres_provider_connects_to_the_real_server_and_a_wrong_port_is_a_problem(
    tmp_path: Path, env: dict[str, str], pg_server: PostgresServer
) -> None:
    add_systems(
        env,
        """\
          - id: checkout-db
            name: Checkout DB
            provider: postgres
            config: {dsn_env: CHECK_TEST_DSN, connect_timeout: 2}
            approvers: [U0LEAD1]
            roles: [{id: read, grant: checkout_read}]
        """,
    )
    report = check(tmp_path, {**env, "CHECK_TEST_DSN": pg_server.dsn})
    assert report.code == 0, report.stdout
    assert report.detail("provider checkout-db (postgres)").startswith(
        "connected as postgres to postgres (PostgreSQL "
    )
    wrong = pg_server.dsn.replace(f":{pg_server.port}/", f":{_closed_port()}/")
    report = check(tmp_path, {**env, "CHECK_TEST_DSN": wrong})
    assert report.code == 1
    assert report.detail("provider checkout-db (postgres)").startswith(
        "cannot connect to PostgreSQL: "
    )


def test_command_provider_is_checked_without_running_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "grant.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    add_systems(
        env,
        f"""\
          - id: legacy
            name: Legacy box
            provider: command
            config: {{argv: ['{script}']}}
            approvers: [U0LEAD1]
            roles: [{{id: read, grant: legacy-ro}}]
        """,
    )
    report = check(tmp_path, env)
    assert report.code == 0, report.stdout
    assert report.detail("provider legacy (command)") == f"{script} is executable (not run)"
    assert not marker.exists()


class _GitHub(FakeGitHub):
    """FakeGitHub, also answering GET /orgs/{org}/teams (the probe's call) like GitHub."""

    def _handle(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == f"/orgs/{self.org}/teams":
            self._record(request)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return Reply(401, {"message": "Bad credentials"})
            return Reply(200, [{"slug": team} for team in sorted(self.members)][:1])
        return super()._handle(request)


class _Okta(FakeOkta):
    """FakeOkta, also answering GET /api/v1/groups (the probe's call) like Okta."""

    def _handle(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/api/v1/groups":
            self._record(request)
            if request.headers.get("authorization") != f"SSWS {self.token}":
                return Reply(401, {"errorCode": "E0000011", "errorSummary": "Invalid token"})
            return Reply(200, [{"id": group} for group in sorted(self.groups)][:1])
        return super()._handle(request)


def test_github_and_okta_tokens_are_tried_with_one_read(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with _GitHub(GITHUB_TOKEN) as github, _Okta(OKTA_TOKEN) as okta:
        add_systems(
            env,
            f"""\
              - id: gh
                name: GitHub
                provider: github_team
                config: {{org: acme, token_env: CHECK_GITHUB_TOKEN, api_url: '{github.url}'}}
                approvers: [U0LEAD1]
                roles: [{{id: admin, grant: prod-admins}}]
              - id: okta
                name: Okta
                provider: okta_group
                config: {{api_url: '{okta.url}', token_env: CHECK_OKTA_TOKEN}}
                approvers: [U0LEAD1]
                roles: [{{id: admin, grant: 00gPRODADMIN}}]
            """,
        )
        good = {**env, "CHECK_GITHUB_TOKEN": GITHUB_TOKEN, "CHECK_OKTA_TOKEN": OKTA_TOKEN}
        report = check(tmp_path, good)
        assert report.code == 0, report.stdout
        assert report.detail("provider gh (github_team)") == (
            "token accepted; it can list the teams of acme"
        )
        assert report.detail("provider okta (okta_group)") == f"token accepted by {okta.url}"
        assert [c.method for c in github.calls + okta.calls] == ["GET", "GET"]

        bad = {**env, "CHECK_GITHUB_TOKEN": "ghp_wrong0000", "CHECK_OKTA_TOKEN": "00wrong0000"}
        report = check(tmp_path, bad)
        assert report.code == 1
        assert report.detail("provider gh (github_team)") == (
            'GitHub answered HTTP 401: {"message": "Bad credentials"}'
        )
        assert report.detail("provider okta (okta_group)").startswith("Okta answered HTTP 401")
        assert "ghp_wrong0000" not in report.stdout


# --- PagerDuty --------------------------------------------------------------------------

needs_oncall_policy = pytest.mark.skipif(
    "auto_approve_oncall" not in Role.model_fields,
    reason="the policy has no auto_approve_oncall yet",
)


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(PAGERDUTY_TOKEN) as fake:
        yield fake


@needs_oncall_policy
def test_on_call_auto_approval_needs_a_pagerduty_token_that_works(
    tmp_path: Path, env: dict[str, str], pagerduty: FakePagerDuty
) -> None:
    policy = Path(env["POLICY_FILE"])
    policy.write_text(
        policy.read_text().replace(
            "{id: write, grant: orders-admin, max_duration: 2h}",
            "{id: write, grant: orders-admin, max_duration: 2h, auto_approve_oncall: PSCHED1}",
        )
    )
    report = check(tmp_path, env)
    assert report.code == 1
    assert report.detail("pagerduty") == (
        "PAGERDUTY_TOKEN is not set, but auto_approve_oncall is used (orders-api/write → PSCHED1)"
    )
    env = {**env, "PAGERDUTY_API_URL": pagerduty.url}
    report = check(tmp_path, {**env, "PAGERDUTY_TOKEN": PAGERDUTY_TOKEN})
    assert report.code == 0, report.stdout
    assert report.detail("pagerduty") == (
        "token accepted; schedules used: orders-api/write → PSCHED1"
    )
    report = check(tmp_path, {**env, "PAGERDUTY_TOKEN": "pd-wrong-0000000"})
    assert report.code == 1
    assert report.detail("pagerduty") == (
        "PagerDuty refused the token (HTTP 401): check PAGERDUTY_TOKEN"
    )


def test_without_on_call_auto_approval_pagerduty_is_not_checked(
    tmp_path: Path, env: dict[str, str]
) -> None:
    report = check(tmp_path, env)
    assert "pagerduty" not in report.rows


# --- AWS, in-process under moto ---------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_aws_providers_are_tried_with_a_read_that_changes_nothing(
    tmp_path: Path,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import boto3
    from moto import mock_aws

    region = "eu-west-1"
    for name in list(os.environ):
        if name.startswith(("SLACK_", "PAGERDUTY_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in {
        **env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    with mock_aws():
        instance = boto3.client("sso-admin", region_name=region).list_instances()["Instances"][0]
        add_systems(
            env,
            f"""\
              - id: aws-prod
                name: AWS production
                provider: aws_identity_center
                config:
                  region: {region}
                  instance_arn: {instance["InstanceArn"]}
                  identity_store_id: {instance["IdentityStoreId"]}
                  account_id: '111122223333'
                approvers: [U0LEAD1]
                roles: [{{id: admin, grant: ProdAdmin}}]
              - id: iam
                name: IAM
                provider: aws_iam_group
                config: {{region: {region}}}
                approvers: [U0LEAD1]
                roles: [{{id: admin, grant: prod-admins}}]
            """,
        )
        code = main(["check", "--json"])
    rows = {row["check"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert code == 0, rows
    assert rows["provider aws-prod (aws_identity_center)"]["detail"] == (
        f"Identity Center instance {instance['InstanceArn']} answers"
    )
    assert rows["provider iam (aws_iam_group)"]["detail"] == (
        "AWS credentials work (arn:aws:sts::123456789012:user/moto); IAM permissions not tried"
    )
