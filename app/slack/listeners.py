"""Bolt listeners: parse what Slack sent, ack within milliseconds, call an operation, answer.

No business rules here. Every click is re-checked by the operation it calls (the payload says
who clicked; it never decides what they may do). Refusals go back to the clicker alone.
Anything slow (Slack Web API calls, provider calls) goes to `later` after the ack.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.context import AppContext
from app.db import transaction
from app.models import AccessSession, EndReason
from app.operations import queries
from app.operations.decide_request import approve_request, deny_request
from app.operations.end_session import end_session
from app.operations.errors import InvalidRequest, NotFound, OperationError
from app.operations.grant_session import grant_session, retry_grant
from app.operations.record_closeout import check_closeout_writer, record_closeout
from app.operations.request_access import RequestForm, create_request
from app.slack import views
from app.slack.after_ack import AfterAck
from app.slack.ids import Action, Block, Callback
from app.slack.text import escape, unescape

log = structlog.get_logger(__name__)
QUICK_FIELDS = ("system", "role", "duration", "ticket", "reason")


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach every listener to the Bolt app."""

    @app.command("/prod-access")
    def on_command(ack: Ack, command: dict, client: WebClient) -> None:
        user = command["user_id"]
        text = unescape(command.get("text") or "").strip()
        word = text.split(maxsplit=1)[0].lower() if text else ""
        if not text:
            ack()
            modal = views.request_modal(ctx.policy)
            later(client.views_open, trigger_id=command["trigger_id"], view=modal)
        elif word == "help":
            ack(text=views.help_text(ctx.policy))
        elif word in ("list", "status"):
            with transaction(ctx.db) as db:
                answer = views.list_text(
                    queries.pending_requests(db, user), queries.open_sessions(db, user)
                )
            ack(text=answer)
        elif word == "done":
            _done(ack, user, text.split()[1:])
        else:
            _quick_request(ack, user, text)

    def _quick_request(ack: Ack, user: str, text: str) -> None:
        parts = text.split(maxsplit=4)
        if len(parts) < len(QUICK_FIELDS):
            missing = ", ".join(QUICK_FIELDS[len(parts) :])
            ack(text=views.problem_text({"missing": f"Missing: {missing}."}))
            return
        try:
            request = create_request(ctx, user, RequestForm(*parts))  # stored before we say so
        except InvalidRequest as exc:
            ack(text=views.problem_text(exc.errors))
            return
        ack(text=f"Request `{request.id}` is on its way to the approvers.")
        later(ctx.notify.request_created, request)

    def _done(ack: Ack, user: str, ids: list[str]) -> None:
        with transaction(ctx.db) as db:
            mine = [s.id for s in queries.active_sessions(db, user)]
        targets = [i for i in ids if i in mine] if ids else mine
        if not targets:
            wanted = f" called {escape(' '.join(ids))}" if ids else ""
            ack(text=f"You have no active access{wanted} to end.")
            return
        ack(text="Ending " + ", ".join(f"`{t}`" for t in targets) + " now.")
        for session_id in targets:
            later(_try, lambda sid=session_id: end_session(ctx, sid, EndReason.released, user))

    @app.event("app_home_opened")
    def on_home_opened(ack: Ack, event: dict, client: WebClient) -> None:
        ack()
        later(_publish_home, client, event["user"])

    def _publish_home(client: WebClient, user: str) -> None:
        with transaction(ctx.db) as db:
            view = views.home_view(
                ctx.policy, queries.pending_requests(db, user), queries.open_sessions(db, user)
            )
        client.views_publish(user_id=user, view=view)

    # --- the request modal ---
    @app.action(Action.system_select)
    @app.action(Action.role_select)
    def on_modal_choice(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        view = body["view"]
        system, role = _selected(view["state"]["values"])
        later(
            client.views_update,
            view_id=view["id"],
            hash=view.get("hash"),
            view=views.request_modal(ctx.policy, system, role),
        )

    @app.view(Callback.request_modal)
    def on_request_submit(ack: Ack, body: dict, view: dict) -> None:
        values = view["state"]["values"]
        system, role = _selected(values)
        form = RequestForm(
            system=system or "",
            role=role or "",
            duration=_value(values, Block.duration) or "",
            ticket=_value(values, Block.ticket) or "",
            reason=_value(values, Block.reason) or "",
        )
        try:
            request = create_request(ctx, body["user"]["id"], form)
        except InvalidRequest as exc:
            ack(response_action="errors", errors=_field_errors(values, exc.errors))
            return
        ack()
        later(ctx.notify.request_created, request)

    # --- the approval card ---
    @app.action(Action.approve)
    def on_approve(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(_approve_and_grant, action["value"], body, client)

    def _approve_and_grant(request_id: str, body: dict, client: WebClient) -> None:
        session = _try(lambda: approve_request(ctx, request_id, body["user"]["id"]), client, body)
        if session is not None:
            grant_session(ctx, session.id)

    @app.action(Action.deny)
    def on_deny(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(_try, lambda: deny_request(ctx, action["value"], body["user"]["id"]), client, body)

    @app.action(Action.retry_grant)
    def on_retry_grant(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(_try, lambda: retry_grant(ctx, action["value"], body["user"]["id"]), client, body)

    # --- the requester's DM ---
    @app.action(Action.end_session)
    def on_end_session(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        later(
            _try, lambda: end_session(ctx, action["value"], EndReason.released, user), client, body
        )

    @app.action(Action.open_closeout)
    def on_open_closeout(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(_open_closeout, action["value"], body, client)

    def _open_closeout(session_id: str, body: dict, client: WebClient) -> None:
        def check() -> AccessSession:
            with transaction(ctx.db) as db:
                session = db.get(AccessSession, session_id)
                if session is None:
                    raise NotFound(f"No session {session_id} exists.")
                check_closeout_writer(session, body["user"]["id"])
                return session

        session = _try(check, client, body)
        if session is not None:
            client.views_open(trigger_id=body["trigger_id"], view=views.closeout_modal(session))

    @app.view(Callback.closeout_modal)
    def on_closeout_submit(ack: Ack, body: dict, view: dict) -> None:
        values = view["state"]["values"]
        changes = (_value(values, Block.changes) or "").strip()
        if not changes:
            ack(
                response_action="errors",
                errors={Block.changes: "Say what you changed (or 'nothing')."},
            )
            return
        try:
            with transaction(ctx.db) as db:
                session = db.get(AccessSession, view["private_metadata"])
                if session is None:
                    raise NotFound("That session no longer exists.")
                check_closeout_writer(session, body["user"]["id"])
        except OperationError as exc:
            ack(response_action="errors", errors={Block.changes: str(exc)})
            return
        ack()
        later(
            _try,
            lambda: record_closeout(
                ctx,
                view["private_metadata"],
                body["user"]["id"],
                changes,
                _value(values, Block.followups) or "",
            ),
        )

    def _try(fn: Any, client: WebClient | None = None, body: dict | None = None) -> Any:
        """Run an operation; a refusal goes back to the clicker only, as an ephemeral message."""
        try:
            return fn()
        except OperationError as exc:
            log.info("operation_refused", reason=str(exc))
            if client is not None and body is not None:
                _tell(client, body, f":no_entry: {exc}")
            return None

    def _tell(client: WebClient, body: dict, text: str) -> None:
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
            client.chat_postMessage(channel=user, text=text)


def _value(values: dict, block_prefix: str) -> str | None:
    """The value of the first input whose block id is `block_prefix` or starts with it + ':'."""
    for block_id, actions in values.items():
        if block_id == block_prefix or block_id.startswith(block_prefix + ":"):
            for element in actions.values():
                if element.get("selected_option"):
                    return element["selected_option"]["value"]
                if element.get("value") is not None:
                    return element["value"]
    return None


def _selected(values: dict) -> tuple[str | None, str | None]:
    return _value(values, Block.system), _value(values, Block.role)


def _field_errors(values: dict, errors: dict[str, str]) -> dict[str, str]:
    """Map field names to the block ids the modal uses (role/duration carry suffixes)."""
    out: dict[str, str] = {}
    for field, message in errors.items():
        block_id = next(
            (b for b in values if b == field or b.startswith(field + ":")),
            Block.system if field in ("role", "duration") else field,
        )
        out.setdefault(block_id, message)  # the first problem of a block is the one to fix first
    return out
