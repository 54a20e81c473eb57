"""Can the bot reach Slack with its token, and post where it must? Slack's `auth.test` and
`conversations.info`, each answered with what was found or what to fix; nothing is posted.
`prod-access check` shows both; `serve` tries auth.test before it starts.

Rules it relies on:
- every failure names what to fix: SLACK_BOT_TOKEN when Slack refuses the token, SLACK_API_URL
  and the URL when Slack cannot be reached;
- slack_sdk logs each failed call at ERROR; the caller's line says the same thing, so this
  client's own log lines show only with LOG_LEVEL=debug.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.config import Settings
from app.text import short

TIMEOUT_SECONDS = 10
#: auth.test errors that mean the token itself is wrong (not Slack, not the network).
REFUSED_TOKEN = ("invalid_auth", "not_authed", "account_inactive", "token_revoked")


def client_for(settings: Settings) -> WebClient:
    """A Web API client with the bot token, for one look at Slack (no retries beyond
    slack_sdk's default one for a dropped connection)."""
    token = settings.slack_bot_token
    log = logging.getLogger(__name__)
    log.setLevel(logging.DEBUG if settings.log_level == "debug" else logging.CRITICAL)
    return WebClient(
        token=token.get_secret_value() if token else None,
        base_url=settings.slack_api_url,
        timeout=TIMEOUT_SECONDS,
        logger=log,
    )


def auth_test(client: WebClient) -> tuple[str | None, str]:
    """(the bot's name, "team …, bot @…") when Slack accepts the token; else (None, what to
    fix)."""
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        hint = (
            "check SLACK_BOT_TOKEN"
            if error in REFUSED_TOKEN
            else "see https://api.slack.com/methods/auth.test"
        )
        return None, f"Slack answered {error}: {hint}"
    except Exception as exc:  # connection refused, DNS, TLS, timeout: all say the same
        return None, (
            f"Slack unreachable at {client.base_url}: {short(exc, 160)}: "
            "check SLACK_API_URL and the network"
        )
    bot = str(auth.get("user") or "prod-access")
    return (
        bot,
        f"team {auth.get('team')} ({auth.get('team_id')}), bot @{bot} ({auth.get('user_id')})",
    )


def channel_membership(client: WebClient, channel: str, purpose: str, bot: str) -> tuple[bool, str]:
    """Whether the bot (named `bot`) is a member of `channel`, which it posts in for `purpose`,
    and what to do when it is not."""
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        if error == "channel_not_found":
            return False, (
                f"channel_not_found ({purpose}): use the channel's id (C…); a private channel "
                f"must invite the bot first: /invite @{bot}"
            )
        if error == "missing_scope":
            return False, (
                "the bot token lacks channels:read / groups:read: add them (manifest.yml) "
                "and reinstall the app"
            )
        return False, f"Slack answered {error} ({purpose})"
    except Exception as exc:
        return False, f"Slack unreachable at {client.base_url}: {short(exc, 160)}"
    name = f"#{info.get('name') or channel}"
    if info.get("is_archived"):
        return False, f"{name} is archived ({purpose}): pick another channel"
    if not info.get("is_member"):
        return (
            False,
            f"the bot is not in {name} ({purpose}): invite the bot: /invite @{bot} in {name}",
        )
    return True, f"{name}: the bot is a member ({purpose})"
