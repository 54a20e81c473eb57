"""manifest.yml is a Slack app manifest Slack accepts, wired to the bot's one endpoint.

Validated against Slack's published JSON Schema (draft-07), vendored in
tests/fixtures/slack/ (its source is named in the README there), so a clone alone runs it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(__file__).resolve().parent / "fixtures" / "slack" / "manifest.schema.1.0.0.json"
REQUIRED_BOT_SCOPES = {
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load((REPO / "manifest.yml").read_text())


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def error_messages(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_manifest_matches_slacks_schema(
    manifest: dict[str, Any], validator: Draft7Validator
) -> None:
    assert error_messages(validator, manifest) == []


def test_schema_check_catches_a_broken_manifest(
    manifest: dict[str, Any], validator: Draft7Validator
) -> None:
    without_name = copy.deepcopy(manifest)
    del without_name["display_information"]
    bad_command = copy.deepcopy(manifest)
    bad_command["features"]["slash_commands"][0]["command"] = "prod-access"

    assert any("display_information" in m for m in error_messages(validator, without_name))
    assert any("slash_commands" in m for m in error_messages(validator, bad_command))


def test_slash_command_and_request_urls_point_at_the_bolt_endpoint(
    manifest: dict[str, Any],
) -> None:
    [command] = manifest["features"]["slash_commands"]
    settings = manifest["settings"]
    urls = [
        command["url"],
        settings["interactivity"]["request_url"],
        settings["event_subscriptions"]["request_url"],
    ]

    assert command["command"] == "/prod-access"
    assert all(url.endswith("/slack/events") for url in urls), urls
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["socket_mode_enabled"] is True


def test_bot_has_the_scopes_the_code_uses(manifest: dict[str, Any]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])

    assert REQUIRED_BOT_SCOPES - scopes == set()
