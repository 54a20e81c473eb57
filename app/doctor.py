"""`prod-access check`: can this deployment work? One result per check, nothing changed.

The checks, in the order they are shown:
- settings (every invalid variable, then the Slack credentials the chosen mode needs);
- the policy file (a mistake is shown as `file:line: key: reason`);
- open sessions: the policy still has the system and role of every session that may hold
  access (read from the database; one that does not exist yet is not created);
- Slack `auth.test` with the bot token;
- every channel the bot must post in (approver channels, break-glass escalation channels, the
  review channel): `conversations.info` says whether the bot is a member. Nothing is posted;
- every system's provider: its config is built as `serve` builds it, then its optional
  `probe()` (see app/providers/base.py) makes one cheap call that changes nothing;
- PagerDuty, when a role auto-approves whoever is on call: the token is set and accepted.

A failing check does not stop the others: whatever can still be checked is.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.config import Settings
from app.logging import setup_logging
from app.oncall import OnCallUnavailable, pagerduty_from_settings
from app.policy import Policy, PolicyError, load_policy
from app.providers.base import Provider, ProviderConfigError, ProviderError, provider_class
from app.text import redact, short

OK, PROBLEM = "OK", "PROBLEM"
PROBE_WORKERS = 8
SLACK_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool
    detail: str

    @property
    def status(self) -> str:
        return OK if self.ok else PROBLEM

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


def run_checks() -> list[CheckResult]:
    """Every check, in order (logging is set up once the settings are read)."""
    results: list[CheckResult] = []
    settings = _settings(results)
    setup_logging(settings.log_format, settings.log_level)
    policy = _policy(settings, results)
    if policy is not None:
        _sessions_covered(settings, policy, results)
    _slack(settings, policy, results)
    if policy is not None:
        _providers(policy, results)
        _pagerduty(settings, policy, results)
    # Error texts come from libraries and servers; no secret the bot knows may reach the screen
    # (the settings and the providers registered theirs with app.text as they were read).
    return [replace(result, detail=redact(result.detail)) for result in results]


# --- settings and policy ----------------------------------------------------------------


def _settings(results: list[CheckResult]) -> Settings:
    """Settings from env and .env; each invalid variable is a problem and its default stands in,
    so the checks that do not depend on it still run."""
    overrides: dict[str, Any] = {}
    while True:  # each round replaces at least one more field, or raises
        try:
            settings = Settings(**overrides)
            break
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                if name not in Settings.model_fields or name in overrides:
                    raise  # not a field's value (or its default failed): a bug, not a setting
                reason = str(error["msg"]).removeprefix("Value error, ")
                results.append(
                    CheckResult("settings", False, f"{name.upper()} is invalid: {reason}")
                )
                overrides[name] = Settings.model_fields[name].default
    if settings.slack_bot_token is None and "slack_bot_token" not in overrides:
        results.append(
            CheckResult("settings", False, "SLACK_BOT_TOKEN is not set (see .env.example)")
        )
    if settings.slack_app_token is not None:
        mode = "Socket Mode (SLACK_APP_TOKEN)"
    elif settings.slack_signing_secret is not None:
        mode = "HTTP mode (SLACK_SIGNING_SECRET)"
    else:
        mode = None
        results.append(
            CheckResult(
                "settings",
                False,
                "neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET (HTTP mode) is set",
            )
        )
    if not any(r.check == "settings" for r in results):
        results.append(CheckResult("settings", True, f"complete for {mode}"))
    return settings


def _policy(settings: Settings, results: list[CheckResult]) -> Policy | None:
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        results.append(CheckResult("policy", False, str(exc)))
        return None
    roles = sum(len(system.roles) for system in policy.systems)
    results.append(
        CheckResult(
            "policy",
            True,
            f"{settings.policy_file}: {len(policy.systems)} system(s), {roles} role(s)",
        )
    )
    return policy


def _sessions_covered(settings: Settings, policy: Policy, results: list[CheckResult]) -> None:
    """Does the policy still have every system and role that open sessions hold? (Read only:
    a database that does not exist yet is not created.)"""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from app import db as database
    from app.operations.policy_change import describe_uncovered, uncovered_sessions

    check = "open sessions"
    url = make_url(database.normalize_url(settings.database_url))
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        results.append(CheckResult(check, True, "no database yet"))
        return
    try:
        engine = database.make_engine(settings.database_url)
        try:
            if not inspect(engine).has_table("access_sessions"):
                results.append(CheckResult(check, True, "no sessions yet"))
                return
            with database.reading(database.make_sessionmaker(engine)) as db:
                uncovered = uncovered_sessions(db, policy)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        results.append(CheckResult(check, False, f"database unreachable: {short(exc, 160)}"))
        return
    if uncovered:
        detail = describe_uncovered(settings.policy_file, uncovered)
        results.append(CheckResult(check, False, detail))
    else:
        results.append(CheckResult(check, True, "the policy covers every open session"))


# --- Slack ------------------------------------------------------------------------------


def _slack(settings: Settings, policy: Policy | None, results: list[CheckResult]) -> None:
    """auth.test, then (only when the token works) every channel the bot posts in."""
    if settings.slack_bot_token is None:
        results.append(CheckResult("slack auth.test", False, "skipped: no usable SLACK_BOT_TOKEN"))
        return
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT_SECONDS,
    )
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        hint = (
            "check SLACK_BOT_TOKEN"
            if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked")
            else "see https://api.slack.com/methods/auth.test"
        )
        results.append(CheckResult("slack auth.test", False, f"Slack answered {error}: {hint}"))
        return
    except Exception as exc:  # connection refused, DNS, TLS, timeout: all say the same
        results.append(
            CheckResult(
                "slack auth.test",
                False,
                f"Slack unreachable at {settings.slack_api_url}: {short(exc, 160)}: "
                "check SLACK_API_URL and the network",
            )
        )
        return
    bot_name = str(auth.get("user") or "prod-access")
    results.append(
        CheckResult(
            "slack auth.test",
            True,
            f"team {auth.get('team')} ({auth.get('team_id')}), bot @{bot_name} "
            f"({auth.get('user_id')})",
        )
    )
    for channel, purpose in _channels(settings, policy).items():
        results.append(_channel(client, channel, purpose, bot_name))


def _channels(settings: Settings, policy: Policy | None) -> dict[str, str]:
    """Every channel the bot posts in → what for (in policy order, each once)."""
    uses: dict[str, list[str]] = {}
    if policy is not None:
        for system in policy.systems:
            uses.setdefault(policy.approver_channel(system), []).append(f"approvers of {system.id}")
            breakglass = getattr(system, "breakglass", None)
            escalation = getattr(breakglass, "escalation_channel", None)
            if escalation:
                uses.setdefault(escalation, []).append(f"break-glass of {system.id}")
        if policy.defaults.approver_channel and policy.defaults.approver_channel not in uses:
            uses[policy.defaults.approver_channel] = ["default approver channel"]
    if settings.review_channel and settings.review_schedule:
        uses.setdefault(settings.review_channel, []).append("access review")
    return {channel: ", ".join(purposes) for channel, purposes in uses.items()}


def _channel(client: WebClient, channel: str, purpose: str, bot: str) -> CheckResult:
    check = f"slack channel {channel}"
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        if error == "channel_not_found":
            detail = (
                f"channel_not_found ({purpose}): use the channel's id (C…); a private channel "
                f"must invite the bot first: /invite @{bot}"
            )
        elif error == "missing_scope":
            detail = (
                "the bot token lacks channels:read / groups:read: add them (manifest.yml) "
                "and reinstall the app"
            )
        else:
            detail = f"Slack answered {error} ({purpose})"
        return CheckResult(check, False, detail)
    except Exception as exc:
        return CheckResult(check, False, f"Slack unreachable: {short(exc, 160)}")
    name = f"#{info.get('name') or channel}"
    if info.get("is_archived"):
        return CheckResult(check, False, f"{name} is archived ({purpose}): pick another channel")
    if not info.get("is_member"):
        return CheckResult(
            check,
            False,
            f"the bot is not in {name} ({purpose}): invite the bot: /invite @{bot} in {name}",
        )
    return CheckResult(check, True, f"{name}: the bot is a member ({purpose})")


# --- providers and PagerDuty ------------------------------------------------------------


def _providers(policy: Policy, results: list[CheckResult]) -> None:
    """Build each system's provider as start-up would, then probe the built ones side by side."""
    jobs: list[Callable[[], CheckResult]] = []
    for index, system in enumerate(policy.systems):
        check = f"provider {system.id} ({system.provider})"
        provider, error = _build(policy, index)
        if provider is None:
            jobs.append(partial(CheckResult, check, False, str(error)))
        else:
            jobs.append(partial(_probe, check, provider))
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
        results.extend(pool.map(lambda job: job(), jobs))


def _build(policy: Policy, index: int) -> tuple[Provider | None, str | None]:
    """One system's provider, or the start-up error for it (`file:line: key: reason`)."""
    system = policy.systems[index]
    where: list[Any] = ["systems", index]
    try:
        cls = provider_class(system.provider)
    except KeyError as exc:
        line = policy.locate([*where, "provider"])
        return None, f"{line}: systems[{index}].provider: {exc.args[0]}"
    try:
        return cls(cls.Config.model_validate(system.config)), None
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        line = policy.locate([*where, "config", *error["loc"]])
        return None, f"{line}: systems[{index}].config.{key}: {error['msg']}"
    except ProviderConfigError as exc:
        return None, f"{policy.locate([*where, 'config'])}: systems[{index}].config: {exc}"


def _probe(check: str, provider: Provider) -> CheckResult:
    probe = getattr(provider, "probe", None)
    if not callable(probe):
        return CheckResult(check, True, "config valid; this provider has no connectivity check")
    try:
        detail = probe()
    except ProviderError as exc:
        return CheckResult(check, False, str(exc))
    except Exception as exc:  # a plugin's bug must not hide the other results
        return CheckResult(check, False, f"probe failed: {type(exc).__name__}: {short(exc)}")
    return CheckResult(check, True, str(detail) if detail else "reachable")


def _pagerduty(settings: Settings, policy: Policy, results: list[CheckResult]) -> None:
    users = [
        f"{system.id}/{role.id} → {schedule}"
        for system in policy.systems
        for role in system.roles
        if (schedule := getattr(role, "auto_approve_oncall", None))
    ]
    if not users:
        return
    who = ", ".join(users)
    pagerduty = pagerduty_from_settings(settings)
    if pagerduty is None:
        results.append(
            CheckResult(
                "pagerduty",
                False,
                f"PAGERDUTY_TOKEN is not set, but auto_approve_oncall is used ({who})",
            )
        )
        return
    try:
        pagerduty.probe()
    except OnCallUnavailable as exc:
        results.append(CheckResult("pagerduty", False, str(exc)))
        return
    results.append(CheckResult("pagerduty", True, f"token accepted; schedules used: {who}"))
