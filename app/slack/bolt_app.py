"""Build the Bolt app (sync `App`): one Web API client pointed at SLACK_API_URL, listeners
registered, request signatures verified (HTTP mode) by Bolt on every request."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient

from app.config import Settings
from app.context import AppContext
from app.slack.after_ack import AfterAck
from app.slack.listeners import register


def make_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=10)


class _SameTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN in the env is unused when a client is given; it is the
    client's token, so the warning only confuses operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_bolt_app(
    ctx: AppContext, client: WebClient, later: AfterAck, *, socket: bool = False
) -> App:
    settings = ctx.settings
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    logging.getLogger("slack_bolt.App").addFilter(_SameTokenNotice())
    app = App(
        client=client,
        signing_secret=secret or "socket-mode",
        request_verification_enabled=not socket,
        token_verification_enabled=False,
        # Listeners run in the request's thread and return right after ack(); the slow part
        # goes to `later` (see after_ack.py for why not Bolt's own thread pool).
        process_before_response=True,
    )
    register(app, ctx, later)
    return app
