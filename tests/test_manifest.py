"""manifest.yml is a Slack app manifest Slack accepts, wired to the bot's one endpoint, granting
the scopes the code needs and telling people every form of the slash command.

Validated against Slack's published JSON Schema (draft-07), vendored in
tests/fixtures/slack/ (its source is named in the README there), so a clone alone runs it.
The scopes: every Slack Web API method the code in app/ calls (found in the source, so a new
call is caught) must have its bot scopes, per Slack's documentation, in the manifest.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from slack_sdk import WebClient

from app.slack.blocks.answers import USAGE
from app.slack.listeners.command import BREAKGLASS_FLAG, QUICK_FIELDS
from app.slack.text import unescape

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(__file__).resolve().parent / "fixtures" / "slack" / "manifest.schema.1.0.0.json"

# Web API method → the bot-token scopes it needs, from the "Scopes" facts of each method's
# page at https://docs.slack.dev/reference/methods/<method> (an empty set: none needed).
SCOPES_BY_METHOD: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},  # also to a user id: the app's DM with that person
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    # channels:read for public channels, groups:read for private ones (im:read and mpim:read
    # would be for DMs, which the bot never asks about)
    "conversations.info": {"channels:read", "groups:read"},
    "users.info": {"users:read", "users:read.email"},  # the email field needs users:read.email
    "usergroups.list": {"usergroups:read"},
    "usergroups.users.list": {"usergroups:read"},
    "users.list": {"users:read"},  # `prod-access delegate @handle`
    "chat.getPermalink": set(),  # an escalation links the card
    "views.open": set(),
    "views.update": set(),
    "views.publish": set(),
    # files_upload_v2 is these two calls (and a POST of the content to the URL the first gives)
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
}
# `client.chat_postMessage(`, `client.views_update` passed on to run later, `.api_call("x.y"`
ATTRIBUTE = re.compile(r"\.([A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+)\b")
API_CALL = re.compile(r"""\.api_call\(\s*["']([\w.]+)["']""")


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


def web_api_methods(client_method: str) -> set[str]:
    """The Web API methods one WebClient method calls, read from slack_sdk's own source
    (`files_upload_v2` calls two; most call one)."""
    source = inspect.getsource(getattr(WebClient, client_method))
    methods = set(API_CALL.findall(source))
    for inner in re.findall(r"self\.(\w+)\(", source):
        if inner in vars(WebClient) and not inner.startswith("_"):
            methods |= web_api_methods(inner)
    return methods


def methods_the_code_calls() -> dict[str, set[str]]:
    """Every Web API method app/ calls → the files that call it."""
    called: dict[str, set[str]] = {}
    for path in sorted((REPO / "app").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        names = {n for n in ATTRIBUTE.findall(source) if n in vars(WebClient) and n[0] != "_"}
        methods = set(API_CALL.findall(source))
        for name in names:
            methods |= web_api_methods(name)
        for method in methods:
            called.setdefault(method, set()).add(str(path.relative_to(REPO)))
    return called


def test_every_slack_method_the_code_calls_has_its_scopes_in_the_manifest(
    manifest: dict[str, Any],
) -> None:
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    called = methods_the_code_calls()
    # the scan sees the calls we know of, so it cannot pass by finding nothing
    assert {"chat.postMessage", "views.update", "files.completeUploadExternal"} <= set(called)

    unknown = sorted(set(called) - set(SCOPES_BY_METHOD))
    assert unknown == [], f"add these to SCOPES_BY_METHOD from Slack's docs: {unknown}"
    missing = {
        method: (sorted(SCOPES_BY_METHOD[method] - granted), sorted(called[method]))
        for method in called
        if SCOPES_BY_METHOD[method] - granted
    }
    assert missing == {}, "scopes missing from manifest.yml (method: scopes, called from)"
    assert "commands" in granted  # the /prod-access slash command itself


def test_usage_hint_lists_every_form_of_the_command(manifest: dict[str, Any]) -> None:
    """What Slack shows while typing `/prod-access ` names every form the bot's own usage
    (`/prod-access help`) lists: help, list, done, cancel, the quick form and --breakglass."""
    [command] = manifest["features"]["slash_commands"]
    hint = command["usage_hint"]
    # USAGE is mrkdwn (its placeholders escaped); the hint is plain text
    forms = set(re.findall(r"^• `/prod-access ([^`\s]+)", unescape(USAGE), re.M))

    assert forms == {"<system>", BREAKGLASS_FLAG, "list", "done", "cancel", "help"}
    assert [form for form in sorted(forms) if form not in hint] == []
    assert " ".join(f"<{field}>" for field in QUICK_FIELDS[:-1]) in hint
