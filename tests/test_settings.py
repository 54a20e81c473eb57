"""Settings, the files a new user copies (.env.example, Procfile), and secrets kept out of logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from app.config import Settings, SettingsError, load_settings
from app.logging import register_secret, setup_logging

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields <= documented, f"undocumented: {sorted(fields - documented)}"


def test_procfile_runs_http_mode_under_the_production_server() -> None:
    assert (ROOT / "Procfile").read_text().strip() == "web: prod-access serve --http"


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match=r"^LOG_FORMAT is invalid"):
        load_settings(_env_file=None)
    monkeypatch.delenv("LOG_FORMAT")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-wrong-kind")
    with pytest.raises(SettingsError, match=r"^SLACK_APP_TOKEN is invalid: must be an app-level"):
        load_settings(_env_file=None)
    monkeypatch.delenv("SLACK_APP_TOKEN")
    monkeypatch.setenv("REVIEW_PERIOD", "1000000000d")
    with pytest.raises(SettingsError, match=r"^REVIEW_PERIOD is invalid: duration .* is too long"):
        load_settings(_env_file=None)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    import logging

    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


@pytest.mark.usefixtures("restore_logging")
def test_tokens_and_secrets_never_reach_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", "info")  # after capsys took stderr, so the lines are captured
    register_secret("8f742231b10e8888abcd99yyyzzz85a5")
    log = structlog.get_logger("test")
    log.info("calling slack", token="xoxb-1234-5678-abcdef", url="https://slack.com/api/")
    log.info("db", url="postgresql://admin:hunter2@db.internal:5432/checkout")
    log.warning("oops xoxb-1234-5678-abcdef in text, secret 8f742231b10e8888abcd99yyyzzz85a5")
    import logging

    logging.getLogger("slack_bolt").warning("token xapp-1-A0-123-abc leaked?")
    err = capsys.readouterr().err
    for secret in ("xoxb-1234", "hunter2", "8f742231b10e8888abcd99yyyzzz85a5", "xapp-1-A0"):
        assert secret not in err, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines[0]["token"] == "[secret]" and lines[0]["url"] == "https://slack.com/api/"
    assert "db.internal:5432/checkout" in lines[1]["url"]


@pytest.mark.parametrize(
    ("env", "workers"),
    [
        ({}, 256),  # SQLite
        ({"DATABASE_URL": "postgresql://bot@db/prod_access"}, 256),  # one connection per burst
        ({"DATABASE_URL": "postgresql://bot@db/prod_access", "SWEEP_WORKERS": "40"}, 40),
    ],
)
def test_sweep_workers_default_follows_the_database(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], workers: int
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SWEEP_WORKERS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings(_env_file=None).sweep_workers == workers
