"""Settings: the one place environment variables (and `.env`) are read.

A missing or bad setting stops start-up with one line naming the variable (`SettingsError`).
Slack credentials are optional here because `prod-access audit` and `db upgrade` need none;
`require_slack()` checks them where the bot really starts.

Rules it relies on:
- A secret set but blank (`SLACK_SIGNING_SECRET=`, or only spaces) is unset, for every secret
  field and for every variable a provider names (`env_value`): nothing ever stands in for it.
- Every secret read here (each SecretStr field, the password in DATABASE_URL) is registered with
  app.text as soon as the settings are read, so no card, DM, audit row or log line shows it.
- A provider's `*_env` variable is read from the same sources as the settings, in the same
  order: the process environment, then `.env` in the current directory (`env_value`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.text import register_dsn, register_secret

ENV_FILE = ".env"


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")

    # --- Slack ---
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # --- Storage and policy ---
    database_url: str = "sqlite:///prod-access.db"
    policy_file: str = "policy.yml"
    # Policy reload without a restart (app/policy_reload.py): how often each process looks for a
    # `prod-access policy reload` request; with POLICY_RELOAD_ON_CHANGE, for a changed file too.
    policy_reload_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    policy_reload_on_change: bool = False

    # --- HTTP server ---
    port: int = Field(default=3000, ge=1, le=65535)
    web_threads: int = Field(default=8, ge=1, le=256)
    work_threads: int = Field(default=4, ge=1, le=64)

    # --- Step-up approvals (OpenID Connect; needed when the policy uses step_up) ---
    public_url: str | None = None  # the bot's base URL as people's browsers reach it
    oidc_issuer: str | None = None  # discovery at {issuer}/.well-known/openid-configuration
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None

    # --- Metrics ---
    metrics_token: SecretStr | None = None  # set: GET /metrics needs `Authorization: Bearer …`

    # --- Timers ---
    expiry_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Sessions are claimed (`revoking`, audited `expired`) this long before their end, and the
    # provider is called at the end, never before (app/jobs/expire.py)
    expiry_lead_seconds: float = Field(default=2.0, ge=0, le=10)
    # A burst's revokes may start up to this long before their sessions end, by as much as
    # the revokes queued in the burst take to send, so that access ends by `expires_at`; one
    # session alone is revoked at its end (app/jobs/burst.py). 0: never before the end
    expiry_revoke_ahead_seconds: float = Field(default=0.5, ge=0, le=5)
    # 0: chosen for the database (256 on SQLite; on PostgreSQL 256 too, where a burst's calls
    # hold one connection for their advisory locks and the calls that wait their turn 16 at most)
    sweep_workers: int = Field(default=0, ge=0, le=1024)
    reminder_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    revoke_retry_base_seconds: float = Field(default=5.0, gt=0)
    revoke_retry_max_seconds: float = Field(default=300.0, gt=0)
    revoke_alert_after: int = Field(default=3, ge=1, le=100)  # failed attempts, then alert
    reconcile_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    reconcile_lookback_days: int = Field(default=7, ge=1, le=365)

    # --- Access review posted to Slack (both set: on; cron in UTC, e.g. "0 9 1 * *") ---
    review_schedule: str | None = None
    review_channel: str | None = None
    review_period: str = "30d"

    # --- PagerDuty (on-call auto-approval) ---
    pagerduty_token: SecretStr | None = None
    pagerduty_api_url: str = "https://api.pagerduty.com"

    # --- Ticket trackers (app/trackers/): a request's ticket is looked up before the ack ---
    tracker_lookup_seconds: float = Field(default=2.0, gt=0, le=2.5)  # then "not verified"
    tracker_poll_seconds: float = Field(default=60.0, gt=0, le=86400)  # resolved incidents end
    pagerduty_webhook_secret: SecretStr | None = None  # POST /webhooks/pagerduty (v3 webhooks)
    incident_io_webhook_secret: SecretStr | None = None  # POST /webhooks/incident-io (whsec_…)

    # --- Slack notices: one Slack still refuses after the client's retries is kept and re-sent ---
    notice_resend_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    notice_retry_base_seconds: float = Field(default=30.0, gt=0)
    notice_retry_max_seconds: float = Field(default=3600.0, gt=0)
    notice_max_attempts: int = Field(default=10, ge=1, le=1000)

    # --- Audit streaming (app/audit_sinks/): every audit event, in order, to each sink ---
    audit_sink_token: SecretStr | None = None  # Splunk HEC: `Authorization: Splunk <token>`
    audit_sink_secret: SecretStr | None = None  # generic https://: the HMAC signing key
    audit_sinks: str = ""  # comma-separated URLs: https://…, s3://bucket/prefix, file:///…
    audit_sink_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    audit_sink_retry_base_seconds: float = Field(default=5.0, gt=0)
    audit_sink_retry_max_seconds: float = Field(default=300.0, gt=0)

    @field_validator("audit_sinks")
    @classmethod
    def _audit_sinks_shape(cls, value: str, info: ValidationInfo) -> str:
        from app.audit_sinks.targets import parse_sinks

        parse_sinks(value, info.data.get("audit_sink_token"), info.data.get("audit_sink_secret"))
        return value

    # --- Logs ---
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("*", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """Every secret field (and any added later, e.g. a METRICS_TOKEN): `X=` in a .env or a
        deployment template means "not set", never an empty key."""
        if isinstance(value, str) and not value.strip() and info.field_name:
            annotation = cls.model_fields[info.field_name].annotation
            if SecretStr in (annotation, *get_args(annotation)):
                return None
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("public_url", "oidc_issuer")
    @classmethod
    def _base_url_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://prod-access.example.com")
        return value.rstrip("/")

    @field_validator("pagerduty_api_url")
    @classmethod
    def _pagerduty_url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://api.pagerduty.com")
        return value.rstrip("/")

    @field_validator("incident_io_webhook_secret")
    @classmethod
    def _whsec_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from app.webhook_signatures import standard_webhook_key

            standard_webhook_key(value.get_secret_value())
        return value

    @field_validator("review_schedule")
    @classmethod
    def _cron_shape(cls, value: str | None) -> str | None:
        if not value:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a cron expression ({exc}); e.g. '0 9 1 * *'") from None
        return value

    @field_validator("review_period")
    @classmethod
    def _period_shape(cls, value: str) -> str:
        from app.policy_values import parse_duration

        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _sweep_workers_for_database(self) -> Settings:
        if self.sweep_workers == 0:
            self.sweep_workers = 256
        return self

    @model_validator(mode="after")
    def _register_secrets(self) -> Settings:
        self.register_secrets()
        return self

    def register_secrets(self) -> None:
        """Register every secret setting for redaction (done when settings are read; again by
        `build_bot`, for settings made with `model_copy`, which skips the validators)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                register_secret(value.get_secret_value())
        register_dsn(self.database_url)

    def missing_slack(self, *, socket: bool) -> list[str]:
        """The Slack credentials the chosen mode needs and lacks (unset and blank alike), as
        field names: the bot token, and the app-level token (Socket Mode) or the signing secret
        (HTTP)."""
        needed = ["slack_bot_token", "slack_app_token" if socket else "slack_signing_secret"]
        return [name for name in needed if getattr(self, name) is None]

    def missing_step_up(self) -> list[str]:
        """The settings step-up approvals need and lack, as variable names."""
        needed = ("public_url", "oidc_issuer", "oidc_client_id", "oidc_client_secret")
        return [name.upper() for name in needed if not getattr(self, name)]

    def require_slack(self, *, socket: bool) -> None:
        """Raise SettingsError naming the first Slack credential the chosen mode lacks."""
        missing = self.missing_slack(socket=socket)
        if missing:
            raise SettingsError(not_set(missing[0]))


def not_set(name: str) -> str:
    """The line for a required setting that is unset (or blank): `name` is its field name."""
    return f"{name.upper()} is not set (see .env.example)"


def load_settings(**overrides: object) -> Settings:
    """Read settings from env and .env; turn pydantic's report into one line per variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name} is invalid: {msg}") from None


def env_value(name: str) -> str | None:
    """The variable a provider names (a DSN, a webhook secret, an API token, a command's
    `env:`), from the same sources as the settings: the process environment first, then `.env`
    in the current directory. None when unset or blank; set in the environment, even blank, it
    wins over `.env`, as it does for the settings."""
    value = os.environ.get(name)
    if value is None and Path(ENV_FILE).is_file():
        value = dotenv_values(ENV_FILE, encoding="utf-8").get(name)
    return value if value and value.strip() else None
