"""The AWS adapters against moto's in-process AWS (no network): aws_identity_center and
aws_iam_group each keep the provider contract, resolve people and fail clearly.

moto answers every CreateAccountAssignment / DeleteAccountAssignment as SUCCEEDED at once and
keeps no status of its own to poll, so the tests that cover IN_PROGRESS, FAILED and a request
that never finishes rewrite the status as the client receives it (botocore's after-call event);
throttling and 5xx answers are injected in the service's place (before-call), timeouts
as botocore raises them (before-send). Everything else is moto.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto import mock_aws

from app import audit, clock
from app.db import transaction
from app.models import SessionState
from app.policy import PolicyError, load_policy
from app.providers.aws_iam_group import IamGroupConfig, IamGroupProvider
from app.providers.aws_identity_center import IdentityCenterConfig, IdentityCenterProvider
from app.providers.base import ProviderError, build_providers
from tests.conftest import BOB, LEAD1, BotHarness, make_settings, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.provider_contract import access_for, grant_check_revoke_check

REGION = "eu-west-1"
ACCOUNT = "111122223333"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """moto's AWS, with fake credentials and no shared config read from this machine."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


class IdentityCenter:
    """The Identity Center instance moto creates, with one permission set and one user."""

    def __init__(self) -> None:
        self.sso_admin = boto3.client("sso-admin", region_name=REGION)
        instance = self.sso_admin.list_instances()["Instances"][0]
        self.instance_arn = instance["InstanceArn"]
        self.identity_store_id = instance["IdentityStoreId"]
        self.permission_set_arn = self.sso_admin.create_permission_set(
            Name="ProdAdmin", InstanceArn=self.instance_arn
        )["PermissionSet"]["PermissionSetArn"]
        self.identity_store = boto3.client("identitystore", region_name=REGION)
        self.bob_id = self.identity_store.create_user(
            IdentityStoreId=self.identity_store_id,
            UserName="bob",
            DisplayName="Bob",
            Name={"GivenName": "Bob", "FamilyName": "Builder"},
            Emails=[{"Value": "bob@example.com", "Primary": True}],
        )["UserId"]

    def config(self, **overrides: Any) -> IdentityCenterConfig:
        values = {
            "region": REGION,
            "instance_arn": self.instance_arn,
            "identity_store_id": self.identity_store_id,
            "account_id": ACCOUNT,
            "poll_interval": 0,
            "max_attempts": 1,
            **overrides,
        }
        return IdentityCenterConfig.model_validate(values)

    def assigned(self, user_id: str) -> bool:
        """Read at AWS directly, not through the provider."""
        assignments = self.sso_admin.list_account_assignments(
            InstanceArn=self.instance_arn,
            AccountId=ACCOUNT,
            PermissionSetArn=self.permission_set_arn,
        )["AccountAssignments"]
        return any(a["PrincipalId"] == user_id for a in assignments)

    def assign_directly(self, user_id: str) -> None:
        """As an admin would in the AWS console, without the bot."""
        self.sso_admin.create_account_assignment(
            InstanceArn=self.instance_arn,
            TargetId=ACCOUNT,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=self.permission_set_arn,
            PrincipalType="USER",
            PrincipalId=user_id,
        )


@pytest.fixture
def center(aws: None) -> IdentityCenter:
    return IdentityCenter()


def rewrite(client: Any, operation: str, key: str, statuses: list[dict[str, str]]) -> list[str]:
    """Replace the status moto answers for `operation` with the next of `statuses` (while any
    are left); returns the log of operations seen, to count the polls."""
    seen: list[str] = []

    def after_call(parsed: dict[str, Any], **_: Any) -> None:
        seen.append(operation)
        if statuses and key in parsed:
            parsed[key].update(statuses.pop(0))

    client.meta.events.register(f"after-call.sso-admin.{operation}", after_call)
    return seen


def answer_instead(client: Any, operation: str, status: int, code: str) -> None:
    """The next `operation` call answers HTTP `status` with error `code` and never reaches moto
    (botocore's before-call event may answer in the service's place)."""
    used: list[bool] = []

    def before_call(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if used:
            return None
        used.append(True)
        parsed = {
            "Error": {"Code": code, "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("https://aws.invalid/", status, {}, None), parsed

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}.{operation}", before_call)


# --- aws_identity_center -------------------------------------------------------------------


@pytest.mark.parametrize("grant", ["ProdAdmin", "arn"])
def test_identity_center_assignment_is_created_checked_and_deleted(
    center: IdentityCenter, grant: str
) -> None:
    provider = IdentityCenterProvider(center.config())
    access = access_for("bob", center.permission_set_arn if grant == "arn" else grant)
    grant_check_revoke_check(provider, access, lambda: center.assigned(center.bob_id))


def test_identity_center_finds_people_by_email_when_configured(center: IdentityCenter) -> None:
    provider = IdentityCenterProvider(center.config(identity_attribute="emails.value"))
    access = access_for("bob@example.com", "ProdAdmin")
    provider.grant(access)
    assert center.assigned(center.bob_id) and provider.check(access)


def test_identity_center_unknown_user_or_permission_set_is_a_clear_final_error(
    center: IdentityCenter,
) -> None:
    provider = IdentityCenterProvider(center.config())
    with pytest.raises(ProviderError) as nobody:
        provider.grant(access_for("nobody", "ProdAdmin"))
    assert str(nobody.value) == "the identity store has no user with userName 'nobody'"
    assert nobody.value.retryable is False
    assert not provider.check(access_for("nobody", "ProdAdmin"))
    provider.revoke(access_for("nobody", "ProdAdmin"))  # nothing to revoke is fine
    with pytest.raises(ProviderError, match="no permission set named 'ReadOnly'") as missing:
        provider.grant(access_for("bob", "ReadOnly"))
    assert missing.value.retryable is False


def test_identity_center_polls_a_request_in_progress_until_it_succeeds(
    center: IdentityCenter,
) -> None:
    provider = IdentityCenterProvider(center.config())
    in_progress = {"Status": "IN_PROGRESS"}
    rewrite(
        provider.sso_admin,
        "CreateAccountAssignment",
        "AccountAssignmentCreationStatus",
        [in_progress],
    )
    polls = rewrite(
        provider.sso_admin,
        "DescribeAccountAssignmentCreationStatus",
        "AccountAssignmentCreationStatus",
        [in_progress, in_progress],
    )
    provider.grant(access_for("bob", "ProdAdmin"))
    assert len(polls) == 3  # IN_PROGRESS, IN_PROGRESS, then moto's SUCCEEDED
    assert center.assigned(center.bob_id)


def test_identity_center_failed_or_endless_request_is_an_error(center: IdentityCenter) -> None:
    provider = IdentityCenterProvider(center.config(poll_timeout=0.2, poll_interval=0.05))
    access = access_for("bob", "ProdAdmin")
    rewrite(
        provider.sso_admin,
        "CreateAccountAssignment",
        "AccountAssignmentCreationStatus",
        [{"Status": "FAILED", "FailureReason": "Received a 404 status error: Not supported"}],
    )
    with pytest.raises(ProviderError) as failed:
        provider.grant(access)
    assert str(failed.value) == (
        "CreateAccountAssignment failed: Received a 404 status error: Not supported"
    )

    provider.grant(access)  # moto kept the first assignment: nothing is created twice
    endless = [{"Status": "IN_PROGRESS"}] * 100
    rewrite(
        provider.sso_admin,
        "DeleteAccountAssignment",
        "AccountAssignmentDeletionStatus",
        [{"Status": "IN_PROGRESS"}],
    )
    rewrite(
        provider.sso_admin,
        "DescribeAccountAssignmentDeletionStatus",
        "AccountAssignmentDeletionStatus",
        endless,
    )
    with pytest.raises(
        ProviderError, match=r"still in progress after 0.2s \(request [0-9a-f-]{36}\)"
    ) as slow:
        provider.revoke(access)
    assert slow.value.retryable is True


def test_identity_center_throttling_5xx_and_timeouts_are_retryable(
    center: IdentityCenter,
) -> None:
    provider = IdentityCenterProvider(center.config())
    access = access_for("bob", "ProdAdmin")
    answer_instead(provider.sso_admin, "ListAccountAssignments", 500, "InternalServerException")
    with pytest.raises(ProviderError) as server_error:
        provider.check(access)
    assert str(server_error.value) == (
        "sso-admin ListAccountAssignments: InternalServerException: injected by the test"
    )
    assert server_error.value.retryable

    answer_instead(provider.sso_admin, "CreateAccountAssignment", 400, "ThrottlingException")
    with pytest.raises(ProviderError, match="ThrottlingException") as throttled:
        provider.grant(access)
    assert throttled.value.retryable

    def hang(request: Any, **_: Any) -> None:
        raise ReadTimeoutError(endpoint_url=request.url)

    provider.identity_store.meta.events.register_first("before-send.identitystore.GetUserId", hang)
    with pytest.raises(
        ProviderError, match=r"^identitystore GetUserId\(bob\): AWS did not answer"
    ) as timeout:
        provider.grant(access)
    assert timeout.value.retryable
    assert not center.assigned(center.bob_id)


def test_identity_center_access_through_the_bot_is_granted_and_revoke_is_verified(
    center: IdentityCenter,
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
) -> None:
    system = f"""\
  - id: aws-prod
    name: AWS production
    provider: aws_identity_center
    config:
      region: {REGION}
      instance_arn: {center.instance_arn}
      identity_store_id: {center.identity_store_id}
      account_id: '{ACCOUNT}'
      poll_interval: 0
    identity: '{{email_local}}'
    email_domains: [example.com]
    approvers: [U0LEAD1]
    roles:
      - {{id: admin, grant: ProdAdmin, max_duration: 1h}}
"""
    policy = write_policy(tmp_path / "policy.yml", webhook.url, system)
    bot = BotHarness(make_settings(tmp_path, slack, policy), slack)
    try:
        request_id = bot.quick_request("aws-prod admin 1h INC-9 rotate keys", BOB)
        bot.send.click("approve_request", request_id, LEAD1)
        session = bot.wait_session(request_id, SessionState.active)
        assert center.assigned(center.bob_id)
        clock.travel(timedelta(hours=1, seconds=1))
        bot.sweep()
        bot.wait_session(request_id, SessionState.ended)
        assert not center.assigned(center.bob_id)
        with transaction(bot.ctx.db) as db:
            events = [e.event for e in audit.events(db, request_id)]
        assert events[-3:] == ["expired", "revoked", "closeout_prompted"]
        assert session.identity == "bob"
    finally:
        bot.stop()


def test_aws_provider_without_boto3_stops_start_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 → ImportError
    policy = write_policy(
        tmp_path / "policy.yml",
        "http://127.0.0.1:9/hook",
        """\
  - id: aws-iam
    name: AWS IAM
    provider: aws_iam_group
    approvers: [U0LEAD1]
    roles:
      - {id: admin, grant: prod-admins}
""",
    )
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "x" * 16)
    with pytest.raises(PolicyError) as stopped:
        build_providers(load_policy(policy))
    assert str(stopped.value).endswith(
        "systems[1].config: the aws_iam_group provider needs boto3, which is not installed: "
        "pip install 'prod-access[aws]'"
    )


# --- aws_iam_group ---------------------------------------------------------------------------


@pytest.fixture
def iam(aws: None) -> Any:
    client = boto3.client("iam", region_name="us-east-1")
    client.create_user(UserName="bob")
    client.create_group(GroupName="prod-admins")
    client.create_group(GroupName="developers")
    client.add_user_to_group(GroupName="developers", UserName="bob")
    return client


def _in_group(iam: Any, user: str, group: str) -> bool:
    return any(u["UserName"] == user for u in iam.get_group(GroupName=group)["Users"])


def test_iam_group_membership_is_added_checked_and_removed(iam: Any) -> None:
    provider = IamGroupProvider(IamGroupConfig(max_attempts=1))
    grant_check_revoke_check(
        provider, access_for("bob", "prod-admins"), lambda: _in_group(iam, "bob", "prod-admins")
    )
    assert _in_group(iam, "bob", "developers")  # other groups are left alone


def test_iam_group_unknown_user_fails_for_good_and_has_nothing_to_revoke(iam: Any) -> None:
    provider = IamGroupProvider(IamGroupConfig(max_attempts=1))
    with pytest.raises(ProviderError) as missing:
        provider.grant(access_for("nobody", "prod-admins"))
    assert str(missing.value) == (
        "iam AddUserToGroup(nobody → prod-admins): NoSuchEntity: "
        "The user with name nobody cannot be found."
    )
    assert missing.value.retryable is False
    assert not provider.check(access_for("nobody", "prod-admins"))
    provider.revoke(access_for("nobody", "prod-admins"))


def test_iam_group_5xx_is_retryable(iam: Any) -> None:
    provider = IamGroupProvider(IamGroupConfig(max_attempts=1))
    answer_instead(provider.iam, "AddUserToGroup", 503, "ServiceFailure")
    with pytest.raises(ProviderError) as unavailable:
        provider.grant(access_for("bob", "prod-admins"))
    assert unavailable.value.retryable
    assert "ServiceFailure: injected by the test" in str(unavailable.value)
