"""AWS IAM Identity Center provider: assign a permission set to a user for one AWS account.

Config: `region`, `instance_arn` and `identity_store_id` (Identity Center → Settings),
`account_id` (the account the access is for), and `identity_attribute`: how the person's
`identity` is looked up in the identity store (`userName`, the default, or `emails.value`). The
role's `grant` is a permission set ARN, or its name (looked up once, then remembered).

A grant is sso-admin CreateAccountAssignment, a revoke DeleteAccountAssignment; both are
asynchronous at AWS, so the request's status is polled (every `poll_interval` seconds, at most
`poll_timeout`) until it SUCCEEDED or FAILED. `check` lists the account's assignments of the
permission set. Idempotent: an assignment that already exists is not created again, and one
that is gone (or a user the identity store does not know) leaves nothing to revoke.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from app.providers.aws import AwsConfig, make_client, translated
from app.providers.base import AccessGrant, ProviderError

NAME = "aws_identity_center"


class IdentityCenterConfig(AwsConfig):
    instance_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sso:::instance/\S+$")
    identity_store_id: str = Field(min_length=1, max_length=36)
    account_id: str = Field(pattern=r"^\d{12}$")
    identity_attribute: Literal["userName", "emails.value"] = "userName"
    poll_interval: float = Field(default=2.0, ge=0, le=60)
    poll_timeout: float = Field(default=60.0, gt=0, le=900)


class IdentityCenterProvider:
    Config = IdentityCenterConfig

    def __init__(self, config: IdentityCenterConfig) -> None:
        self.config = config
        self.sso_admin = make_client(NAME, "sso-admin", config)
        self.identity_store = make_client(NAME, "identitystore", config)
        self._permission_sets: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- lookups ---
    def _user_id(self, identity: str) -> str | None:
        """The identity store's UserId for the person; None when there is no such user."""
        with translated(f"identitystore GetUserId({identity})"):
            try:
                answer = self.identity_store.get_user_id(
                    IdentityStoreId=self.config.identity_store_id,
                    AlternateIdentifier={
                        "UniqueAttribute": {
                            "AttributePath": self.config.identity_attribute,
                            "AttributeValue": identity,
                        }
                    },
                )
            except self.identity_store.exceptions.ResourceNotFoundException:
                return None
        return str(answer["UserId"])

    def _permission_set_arn(self, grant: str) -> str:
        if grant.startswith("arn:"):
            return grant
        with self._lock:
            if grant in self._permission_sets:
                return self._permission_sets[grant]
        names: dict[str, str] = {}
        with translated("sso-admin ListPermissionSets"):
            pages = self.sso_admin.get_paginator("list_permission_sets")
            for page in pages.paginate(InstanceArn=self.config.instance_arn):
                for arn in page["PermissionSets"]:
                    described = self.sso_admin.describe_permission_set(
                        InstanceArn=self.config.instance_arn, PermissionSetArn=arn
                    )
                    names[described["PermissionSet"]["Name"]] = arn
        with self._lock:
            self._permission_sets.update(names)
        if grant not in names:
            raise ProviderError(f"no permission set named {grant!r} exists", retryable=False)
        return names[grant]

    def _assigned(self, user_id: str, permission_set_arn: str) -> bool:
        with translated("sso-admin ListAccountAssignments"):
            pages = self.sso_admin.get_paginator("list_account_assignments")
            for page in pages.paginate(
                InstanceArn=self.config.instance_arn,
                AccountId=self.config.account_id,
                PermissionSetArn=permission_set_arn,
            ):
                for assignment in page["AccountAssignments"]:
                    if (
                        assignment.get("PrincipalType") == "USER"
                        and assignment.get("PrincipalId") == user_id
                    ):
                        return True
        return False

    def _assignment(self, user_id: str, permission_set_arn: str) -> dict[str, str]:
        return {
            "InstanceArn": self.config.instance_arn,
            "TargetId": self.config.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": permission_set_arn,
            "PrincipalType": "USER",
            "PrincipalId": user_id,
        }

    def _wait(self, what: str, status: dict[str, Any], describe: Callable[[str], Any]) -> None:
        """Poll an assignment request until it is no longer IN_PROGRESS."""
        deadline = time.monotonic() + self.config.poll_timeout
        while status.get("Status") == "IN_PROGRESS":
            if time.monotonic() >= deadline:
                raise ProviderError(
                    f"{what} still in progress after {self.config.poll_timeout:g}s "
                    f"(request {status.get('RequestId')})"
                )
            time.sleep(self.config.poll_interval)
            with translated(f"{what} status"):
                status = describe(str(status.get("RequestId")))
        if status.get("Status") != "SUCCEEDED":
            reason = status.get("FailureReason") or status.get("Status") or "no status"
            raise ProviderError(f"{what} failed: {reason}")

    # --- Provider ---
    def grant(self, access: AccessGrant) -> str | None:
        user_id = self._user_id(access.identity)
        if user_id is None:
            raise ProviderError(
                f"the identity store has no user with {self.config.identity_attribute} "
                f"{access.identity!r}",
                retryable=False,
            )
        permission_set_arn = self._permission_set_arn(access.grant)
        if self._assigned(user_id, permission_set_arn):
            return "the assignment already existed"
        with translated("sso-admin CreateAccountAssignment"):
            status = self.sso_admin.create_account_assignment(
                **self._assignment(user_id, permission_set_arn)
            )["AccountAssignmentCreationStatus"]
        self._wait(
            "CreateAccountAssignment",
            status,
            lambda request_id: self.sso_admin.describe_account_assignment_creation_status(
                InstanceArn=self.config.instance_arn,
                AccountAssignmentCreationRequestId=request_id,
            )["AccountAssignmentCreationStatus"],
        )
        return None

    def revoke(self, access: AccessGrant) -> None:
        user_id = self._user_id(access.identity)
        if user_id is None:
            return
        permission_set_arn = self._permission_set_arn(access.grant)
        if not self._assigned(user_id, permission_set_arn):
            return
        with translated("sso-admin DeleteAccountAssignment"):
            try:
                status = self.sso_admin.delete_account_assignment(
                    **self._assignment(user_id, permission_set_arn)
                )["AccountAssignmentDeletionStatus"]
            except self.sso_admin.exceptions.ResourceNotFoundException:
                return
        self._wait(
            "DeleteAccountAssignment",
            status,
            lambda request_id: self.sso_admin.describe_account_assignment_deletion_status(
                InstanceArn=self.config.instance_arn,
                AccountAssignmentDeletionRequestId=request_id,
            )["AccountAssignmentDeletionStatus"],
        )

    def check(self, access: AccessGrant) -> bool:
        user_id = self._user_id(access.identity)
        if user_id is None:
            return False
        return self._assigned(user_id, self._permission_set_arn(access.grant))

    def probe(self) -> str:
        """The credentials, region and instance work: one page of one permission set."""
        with translated("sso-admin ListPermissionSets"):
            self.sso_admin.list_permission_sets(InstanceArn=self.config.instance_arn, MaxResults=1)
        return f"Identity Center instance {self.config.instance_arn} answers"
