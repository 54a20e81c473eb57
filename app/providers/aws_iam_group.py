"""AWS IAM group provider: add / remove an IAM user to / from an IAM group (one plain account).

The role's `grant` is the group name, the person's `identity` their IAM user name; `region` only
picks the endpoint (IAM is global). Calls: AddUserToGroup, RemoveUserFromGroup and, for `check`,
ListGroupsForUser. Idempotent: adding a member again is accepted by IAM, and removing a user who
is not in the group (or does not exist) leaves nothing to revoke.
"""

from __future__ import annotations

from pydantic import Field

from app.providers.aws import AwsConfig, make_client, translated
from app.providers.base import AccessGrant

NAME = "aws_iam_group"


class IamGroupConfig(AwsConfig):
    region: str = Field(default="us-east-1", min_length=1, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")


class IamGroupProvider:
    Config = IamGroupConfig

    def __init__(self, config: IamGroupConfig) -> None:
        self.config = config
        self.iam = make_client(NAME, "iam", config)

    def grant(self, access: AccessGrant) -> None:
        with translated(f"iam AddUserToGroup({access.identity} → {access.grant})"):
            self.iam.add_user_to_group(GroupName=access.grant, UserName=access.identity)

    def revoke(self, access: AccessGrant) -> None:
        if not self.check(access):
            return
        with translated(f"iam RemoveUserFromGroup({access.identity} ← {access.grant})"):
            try:
                self.iam.remove_user_from_group(GroupName=access.grant, UserName=access.identity)
            except self.iam.exceptions.NoSuchEntityException:
                return

    def check(self, access: AccessGrant) -> bool:
        with translated(f"iam ListGroupsForUser({access.identity})"):
            try:
                pages = self.iam.get_paginator("list_groups_for_user")
                for page in pages.paginate(UserName=access.identity):
                    if any(group["GroupName"] == access.grant for group in page["Groups"]):
                        return True
            except self.iam.exceptions.NoSuchEntityException:
                return False
        return False

    def probe(self) -> str:
        """The AWS credentials work (STS GetCallerIdentity, which needs no permission); the
        IAM permissions themselves are only tried by a grant."""
        with translated("sts GetCallerIdentity"):
            arn = make_client(NAME, "sts", self.config).get_caller_identity()["Arn"]
        return f"AWS credentials work ({arn}); IAM permissions not tried"
