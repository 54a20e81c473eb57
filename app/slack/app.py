"""Build the Bolt app (sync `App`): one Web API client pointed at SLACK_API_URL, listeners
registered, request signatures verified (HTTP mode) by Bolt on every request, a replayed
request refused and a repeated event answered without running it again (replays.py), and every
request's log lines carrying its ids. The signature key is the configured SLACK_SIGNING_SECRET
and nothing else: without one (unset or blank) no HTTP app is built.

The client retries what Slack asks to be retried, with slack_sdk's retry handlers: a rate limit
(429, after its Retry-After), a 500 or 503, a dropped connection. Nothing on the ack path calls
the Web API, so a retry only delays a notice; what still fails goes to the notice outbox
(app/delivery/outbox.py), which tries again for hours.
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import structlog
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from app.config import Settings, SettingsError
from app.context import AppContext
from app.logging import ids_of
from app.slack.after_ack import AfterAck
from app.slack.listeners import register
from app.slack.replays import RefuseReplays

#: Retries within one Web API call (they share one count per call).
RATE_LIMIT_RETRIES = 2
SERVER_ERROR_RETRIES = 2
CONNECTION_RETRIES = 1
#: The longest Retry-After worth sleeping through in a thread; the outbox waits out longer ones.
MAX_RETRY_AFTER_SECONDS = 30


class _BoundedRateLimitRetry(RateLimitErrorRetryHandler):
    """slack_sdk's rate-limit handler (it sleeps for the Retry-After Slack sends), except when
    Slack asks for more than MAX_RETRY_AFTER_SECONDS: holding a notice lane, or a stopping
    worker, that long gains nothing over the outbox's own retry."""

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        allowed = super().can_retry(state=state, request=request, response=response, error=error)
        return allowed and _retry_after(response) <= MAX_RETRY_AFTER_SECONDS


def _retry_after(response: HttpResponse | None) -> float:
    for name, values in (response.headers if response is not None else {}).items():
        if name.lower() == "retry-after" and values:
            try:
                return float(values[0])
            except ValueError:
                return 0.0
    return 0.0


def make_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            _BoundedRateLimitRetry(max_retry_count=RATE_LIMIT_RETRIES),
            ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
            ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        ],
    )


def slack_ids(body: dict[str, Any]) -> dict[str, str]:
    """What to bind to the log lines of one Slack request: a fresh `slack_request_id` to tell
    its lines apart, its kind (`slack_type`: command, block_actions, view_submission, an event
    type …), the command, action, view or event it names (`slack_action`), who sent it
    (`user_id`), and the request or session id its button or view carries."""
    event, view = _part(body.get("event")), _part(body.get("view"))
    actions = body.get("actions")
    action = _part(actions[0] if isinstance(actions, list) and actions else None)
    user = body.get("user")
    kind = body.get("type") or ("command" if "command" in body else None)
    ids: dict[str, str] = {
        "slack_request_id": f"{random.getrandbits(48):012x}",  # a log id, not a secret
        "slack_type": str(event.get("type") or kind or "unknown"),
    }
    name = (
        body.get("command")
        or action.get("action_id")
        or view.get("callback_id")
        or body.get("callback_id")
    )
    if name:
        ids["slack_action"] = str(name)
    user_id = body.get("user_id") or (user.get("id") if isinstance(user, dict) else user)
    user_id = user_id or event.get("user")
    if isinstance(user_id, str):
        ids["user_id"] = user_id
    return {**ids, **ids_of(action.get("value"), view.get("private_metadata"))}


def _part(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class BoundApp(App):
    """Bolt's App, dispatching each request in a context of its own with its ids bound, so
    every line written for it carries them: Bolt's, the listener's, and those of the work it
    hands to AfterAck (which adds the ids it learns, e.g. of a request just created)."""

    pinned: Callable[[], AbstractContextManager[object]] | None = None

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        return contextvars.copy_context().run(self._dispatch_with_ids, req)

    def _dispatch_with_ids(self, req: BoltRequest) -> BoltResponse:
        structlog.contextvars.bind_contextvars(
            **slack_ids(req.body if isinstance(req.body, dict) else {})
        )
        if self.pinned is None:
            return super().dispatch(req)
        # A request, and the work it hands on after its ack, is decided under the policy in
        # force when it arrived, whatever a reload does meanwhile. (Here rather than as a Bolt
        # middleware: that cost each request a second round of Bolt's argument injection.)
        with self.pinned():
            return super().dispatch(req)


class _SameTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN in the env is unused when a client is given; it is the
    client's token, so the warning only confuses operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_bolt_app(
    ctx: AppContext, client: WebClient, later: AfterAck, *, socket: bool = False
) -> App:
    logging.getLogger("slack_bolt.App").addFilter(_SameTokenNotice())
    app = BoundApp(
        name="prod-access",  # else Bolt names the app from inspect.stack(), ~50 ms per build
        client=client,
        signing_secret=_signing_secret(ctx.settings, socket=socket),
        request_verification_enabled=not socket,
        token_verification_enabled=False,
        # Listeners run in the request's thread and return right after ack(); the slow part
        # goes to `later` (see after_ack.py for why not Bolt's own thread pool).
        process_before_response=True,
    )
    app.pinned = ctx.pinned
    app.use(RefuseReplays(ctx.writes))  # after Bolt's own, RequestVerification among them
    register(app, ctx, later)
    return app


def _signing_secret(settings: Settings, *, socket: bool) -> str:
    """The key Bolt checks every HTTP request's signature with: the configured secret, never a
    stand-in. In Socket Mode no signature is checked (Bolt's verification is off and it uses the
    secret for nothing else), so there is none: "" rather than None, because given None Bolt
    reads SLACK_SIGNING_SECRET from the environment itself, past the settings' checks."""
    if socket:
        return ""
    secret = settings.slack_signing_secret
    if secret is None:  # blank is unset too (app.config); serve stops before this
        raise SettingsError("SLACK_SIGNING_SECRET is not set (see .env.example)")
    return secret.get_secret_value()
