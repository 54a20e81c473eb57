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
- PagerDuty, when a role auto-approves whoever is on call: the token is set and accepted;
- step-up (OIDC), when the policy uses step_up or OIDC_ISSUER is set: the settings are complete,
  and the identity provider's discovery document and JWKS can be fetched.

A failing check does not stop the others: whatever can still be checked is.

`serve` runs the checks that connect to nothing but the database (`startup_problems`) before
it starts, and says what they find in the same words as this table.

The table is all that goes to stdout. The libraries' log lines (slack_sdk's "Failed to send a
request", urllib3's retries, botocore's warnings) only repeat what a result says, so they are
shown (on stderr) only with LOG_LEVEL=debug.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from pydantic import ValidationError

from app.audit_sinks.status import check_rows as audit_sink_rows
from app.config import Settings, not_set
from app.logging import setup_logging
from app.oncall import OnCallUnavailable, pagerduty_from_settings
from app.policy import Policy, PolicyError, load_policy
from app.policy_oncall import describe_oncall
from app.providers.base import Provider, ProviderConfigError, ProviderError, provider_class
from app.slack import reach
from app.text import redact, short

OK, PROBLEM = "OK", "PROBLEM"
PROBE_WORKERS = 8


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
    settings, invalid = _settings(results)
    _credentials_for_either_mode(settings, invalid, results)
    setup_logging(settings.log_format, settings.log_level)
    if settings.log_level != "debug":
        logging.getLogger().setLevel(logging.CRITICAL)  # the libraries' lines: see the docstring
    policy = _policy(settings, results)
    if policy is not None:
        _sessions_covered(settings, policy, results)
    _slack(settings, policy, results)
    if policy is not None:
        _providers(policy, results)
        _pagerduty(settings, policy, results)
    _step_up(settings, policy, results)
    results.extend(CheckResult(*row) for row in audit_sink_rows(settings))
    # Error texts come from libraries and servers; no secret the bot knows may reach the screen
    # (the settings and the providers registered theirs with app.text as they were read).
    return [replace(result, detail=redact(result.detail)) for result in results]


@dataclass(frozen=True)
class StartupCheck:
    """What `serve` learns before it starts: the settings (each invalid one's default standing
    in), whether it runs in Socket Mode, and every problem found, one line each."""

    settings: Settings
    socket: bool
    problems: list[str]


def startup_problems(*, socket: bool | None) -> StartupCheck:
    """`serve`'s checks before it starts: those of this table that connect to nothing but the
    database (every invalid setting, the Slack credentials of the mode, the policy, each
    system's provider configuration built as `serve` builds it, the open sessions). With
    `socket` None the mode is Socket Mode when SLACK_APP_TOKEN is set (even if invalid)."""
    results: list[CheckResult] = []
    settings, invalid = _settings(results)
    setup_logging(settings.log_format, settings.log_level)
    if socket is None:
        socket = settings.slack_app_token is not None or "slack_app_token" in invalid
    for name in settings.missing_slack(socket=socket):
        if name not in invalid:
            results.append(CheckResult("settings", False, not_set(name)))
    policy = _policy(settings, results)
    if policy is not None:
        _sessions_covered(settings, policy, results)
        for index in range(len(policy.systems)):
            _, error = _build(policy, index)
            if error is not None:
                results.append(CheckResult("provider", False, error))
        results += needs_of_policy(settings, policy)
    problems = [redact(result.detail) for result in results if not result.ok]
    return StartupCheck(settings, socket, problems)


def needs_of_policy(settings: Settings, policy: Policy) -> list[CheckResult]:
    """The settings this policy needs and that are not set (PagerDuty for on-call approval,
    OIDC for step-up): asked at start and of a policy reloaded while running."""
    results = []
    if _oncall_roles(policy) and settings.pagerduty_token is None:
        results.append(CheckResult("pagerduty", False, _no_pagerduty_token(policy)))
    if policy.uses_step_up() and settings.missing_step_up():
        results.append(CheckResult("step-up", False, _step_up_missing(settings)))
    return results


# --- settings and policy ----------------------------------------------------------------


def _settings(results: list[CheckResult]) -> tuple[Settings, set[str]]:
    """Settings from env and .env, and the fields that were invalid: each invalid variable is a
    problem and its default stands in, so the checks that do not depend on it still run."""
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
    return settings, set(overrides)


def _credentials_for_either_mode(
    settings: Settings, invalid: set[str], results: list[CheckResult]
) -> None:
    """The bot token, and the credential of at least one mode; "settings OK" when nothing in
    the settings was wrong."""
    if settings.slack_bot_token is None and "slack_bot_token" not in invalid:
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
    from sqlalchemy.exc import SQLAlchemyError

    from app import db as database
    from app.operations.policy_change import describe_uncovered, uncovered_sessions

    check = "open sessions"
    try:
        database.require_set_up(settings.database_url)
        engine = database.make_engine(settings.database_url)
        try:
            with database.reading(database.make_sessionmaker(engine)) as db:
                uncovered = uncovered_sessions(db, policy)
        finally:
            engine.dispose()
    except database.DatabaseNotReady as exc:
        results.append(CheckResult(check, True, f"no sessions yet: {exc}"))
        return
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
    client = reach.client_for(settings)
    bot, detail = reach.auth_test(client)
    results.append(CheckResult("slack auth.test", bot is not None, detail))
    if bot is None:
        return
    for channel, purpose in _channels(settings, policy).items():
        ok, detail = reach.channel_membership(client, channel, purpose, bot)
        results.append(CheckResult(f"slack channel {channel}", ok, detail))


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


def _oncall_roles(policy: Policy) -> list[str]:
    """`system/role → schedule` for every role that auto-approves whoever is on call."""
    return [
        f"{system.id}/{role.id} → {describe_oncall(schedule)}"
        for system in policy.systems
        for role in system.roles
        if (schedule := getattr(role, "auto_approve_oncall", None))
    ]


def _no_pagerduty_token(policy: Policy) -> str:
    who = ", ".join(_oncall_roles(policy))
    return f"PAGERDUTY_TOKEN is not set, but auto_approve_oncall is used ({who})"


def _pagerduty(settings: Settings, policy: Policy, results: list[CheckResult]) -> None:
    users = _oncall_roles(policy)
    if not users:
        return
    who = ", ".join(users)
    pagerduty = pagerduty_from_settings(settings)
    if pagerduty is None:
        results.append(CheckResult("pagerduty", False, _no_pagerduty_token(policy)))
        return
    try:
        pagerduty.probe()
    except OnCallUnavailable as exc:
        results.append(CheckResult("pagerduty", False, str(exc)))
        return
    results.append(CheckResult("pagerduty", True, f"token accepted; schedules used: {who}"))


# --- step-up approvals ------------------------------------------------------------------


def _step_up_missing(settings: Settings) -> str:
    return (
        "step_up is used in the policy, but "
        + ", ".join(settings.missing_step_up())
        + " not set (see .env.example)"
    )


def _step_up(settings: Settings, policy: Policy | None, results: list[CheckResult]) -> None:
    """The identity provider of step-up approvals: discovery and JWKS fetched."""
    from app.oidc import OidcUnavailable, oidc_from_settings

    used = policy is not None and policy.uses_step_up()
    if not used and not settings.oidc_issuer:
        return
    check = "step-up (OIDC)"
    oidc = oidc_from_settings(settings)
    if oidc is None:
        missing = ", ".join(settings.missing_step_up())
        detail = _step_up_missing(settings) if used else f"{missing} not set (see .env.example)"
        results.append(CheckResult(check, False, detail))
        return
    try:
        results.append(CheckResult(check, True, oidc.probe()))
    except OidcUnavailable as exc:
        results.append(CheckResult(check, False, f"identity provider unreachable: {exc}"))
