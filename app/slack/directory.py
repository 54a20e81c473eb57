"""People facts from Slack, cached: a person's email (users.info, scope users:read.email) and
the members of a user group (usergroups.list + usergroups.users.list, scope usergroups:read).
A group's members are cached briefly, so a change in Slack counts within a minute."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


class SlackDirectory:
    """People facts from Slack, cached: emails from users.info (scope users:read.email), user
    group members from usergroups.list + usergroups.users.list (scope usergroups:read)."""

    def __init__(
        self, client: WebClient, ttl_seconds: float = 600, group_ttl_seconds: float = 60
    ) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.group_ttl = group_ttl_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, ttl: float, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def email_for(self, user_id: str) -> str | None:
        def load() -> str | None:
            try:
                user = self.client.users_info(user=user_id)["user"]
            except SlackApiError as exc:
                raise ValueError(
                    f"cannot look up <@{user_id}> in Slack ({exc.response.get('error')})"
                ) from None
            return (user.get("profile") or {}).get("email")

        return self._cached(f"email:{user_id}", self.ttl, load)

    def _group_ids(self) -> dict[str, str]:
        def load() -> dict[str, str]:
            try:
                groups = self.client.usergroups_list()["usergroups"]
            except SlackApiError as exc:
                raise LookupError(
                    f"cannot list user groups ({exc.response.get('error')})"
                ) from None
            return {g["handle"]: g["id"] for g in groups if not g.get("date_delete")}

        return self._cached("groups", self.group_ttl, load)

    def group_id(self, handle: str) -> str | None:
        try:
            return self._group_ids().get(handle)
        except LookupError:
            return None

    def group_members(self, handle: str) -> set[str]:
        group_id = self._group_ids().get(handle)
        if group_id is None:
            raise LookupError(f"no user group @{handle} in this workspace")

        def load() -> set[str]:
            try:
                users = self.client.usergroups_users_list(usergroup=group_id)["users"]
            except SlackApiError as exc:
                raise LookupError(
                    f"cannot read @{handle}'s members ({exc.response.get('error')})"
                ) from None
            return set(users)

        return self._cached(f"group:{group_id}", self.group_ttl, load)
