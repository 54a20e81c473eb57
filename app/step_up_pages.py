"""The browser's side of step-up approvals (mounted by app/web.py, in HTTP and Socket Mode):

- `GET /step-up/<token>`: the link from Slack. Redirects (303) to the identity provider's
  authorization endpoint and sets a cookie holding the login's `state`, so that only the
  browser that opened the link can finish the login.
- `GET /step-up/callback?code=…&state=…`: the provider sends the browser back; the operation
  (app/operations/step_up.py) verifies the login and records the decision; the page says what
  happened, or why not, in plain words.

Rules it relies on: every page is plain HTML with every text escaped (html.escape); no page,
header other than the cookie, or log line carries a token, a code or a state; pages are never
cached, and refer nowhere (Referrer-Policy: no-referrer), so the link does not leak.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import structlog

from app.context import AppContext
from app.oidc import CALLBACK_PATH
from app.operations.errors import OperationError
from app.operations.step_up import StepUpFailed, finish, open_link

PREFIX = "/step-up/"
COOKIE = "prod_access_step_up"
log = structlog.get_logger(__name__)
StartResponse = Callable[..., Any]


def step_up_route(
    ctx: AppContext, environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes] | None:
    """Answer a step-up request; None when the path is not one of ours."""
    path = environ.get("PATH_INFO", "")
    if not path.startswith(PREFIX):
        return None
    if environ.get("REQUEST_METHOD") != "GET":
        return _page(start_response, "405 Method Not Allowed", "Not allowed", "Use the link.")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    try:
        if path == CALLBACK_PATH:
            cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
            browser_state = cookie[COOKIE].value if COOKIE in cookie else None
            outcome = finish(
                ctx, query.get("state"), query.get("code"), browser_state, query.get("error")
            )
            return _page(
                start_response,
                "200 OK",
                "Done",
                f"{outcome.text} — you can close this tab.",
                clear_cookie=True,
            )
        token = path.removeprefix(PREFIX)
        url, state = open_link(ctx, token)
    except StepUpFailed as exc:
        log.info("step_up_failed", reason=exc.reason)
        return _page(start_response, "403 Forbidden", "Not approved", f"Not approved: {exc}")
    except OperationError as exc:
        return _page(start_response, "503 Service Unavailable", "Not available", str(exc))
    secure = "; Secure" if (ctx.settings.public_url or "").startswith("https://") else ""
    start_response(
        "303 See Other",
        [
            ("Location", url),
            ("Set-Cookie", f"{COOKIE}={state}; Path={PREFIX}; HttpOnly; SameSite=Lax{secure}"),
            *_NO_CACHE,
        ],
    )
    return [b""]


_NO_CACHE = [("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer")]


def _page(
    start_response: StartResponse, status: str, title: str, text: str, clear_cookie: bool = False
) -> list[bytes]:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>prod-access: {html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;margin:3em'><p>{html.escape(text)}</p>"
        "</body></html>\n"
    ).encode()
    headers = [("Content-Type", "text/html; charset=utf-8"), *_NO_CACHE]
    if clear_cookie:
        headers.append(("Set-Cookie", f"{COOKIE}=; Path={PREFIX}; Max-Age=0"))
    start_response(status, headers)
    return [body]
