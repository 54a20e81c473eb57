"""Bolt listeners: parse what Slack sent, ack within milliseconds, call an operation, answer.

No business rules here. Every click is re-checked by the operation it calls (the payload says
who clicked; it never decides what they may do). Refusals go back to the clicker alone.
Anything slow (Slack Web API calls, provider calls) goes to `later` after the ack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, AccessSession, EndReason, ReviewState
from app.operations import people, queries
from app.operations.common import read_row
from app.operations.decide_request import (
    approve_and_grant,
    cancel_request,
    check_may_deny,
    deny_request,
)
from app.operations.end_session import end_session
from app.operations.errors import (
    InvalidRequest,
    OperationError,
)
from app.operations.grant_session import retry_grant
from app.operations.record_closeout import check_closeout_writer, record_closeout
from app.operations.request_access import (
    PolicyRoute,
    RequestForm,
    check_extender,
    create_request,
    extension_room,
    policy_route,
    request_extension,
    submit_request,
)
from app.operations.review_breakglass import review_breakglass
from app.slack import views
from app.slack.after_ack import AfterAck
from app.slack.ids import Action, Block, Callback
from app.slack.text import escape, unescape, with_mentions

log = structlog.get_logger(__name__)
QUICK_FIELDS = ("system", "role", "duration", "ticket", "reason")
BREAKGLASS_FLAG = "--breakglass"


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach every listener to the Bolt app."""

    @app.command("/prod-access")
    def on_command(ack: Ack, command: dict, client: WebClient) -> None:
        user = command["user_id"]
        text = unescape(command.get("text") or "").strip()
        word = text.split(maxsplit=1)[0].lower() if text else ""
        if not text:
            ack()
            later(client.views_open, trigger_id=command["trigger_id"], view=_modal(user))
        elif word == "help":
            ack(text=views.help_text(ctx.policy, people.requestable(ctx, user)))
        elif word in ("list", "status"):
            with transaction(ctx.db) as db:
                answer = views.list_text(
                    queries.pending_requests(db, user), queries.open_sessions(db, user)
                )
            ack(text=answer)
        elif word == "done":
            _done(ack, user, text.split()[1:])
        elif word == "cancel":
            _cancel(ack, user, text.split()[1:])
        else:
            _quick_request(ack, user, text)

    def _modal(user: str, system: str | None = None, role: str | None = None) -> dict:
        chosen = ctx.policy.system(system) if system else None
        return views.request_modal(
            ctx.policy,
            system,
            role,
            systems=people.requestable(ctx, user),
            breakglass=chosen is not None and people.may_break_glass(ctx, chosen, user),
        )

    def _quick_request(ack: Ack, user: str, text: str) -> None:
        words = text.split()
        breakglass = BREAKGLASS_FLAG in words[: len(QUICK_FIELDS)]
        if breakglass:
            words.remove(BREAKGLASS_FLAG)
        parts = " ".join(words).split(maxsplit=4)
        if len(parts) < len(QUICK_FIELDS):
            missing = ", ".join(QUICK_FIELDS[len(parts) :])
            ack(text=views.problem_text({"missing": f"Missing: {missing}."}))
            return
        try:
            # stored before we say so
            system, role, duration, ticket, reason = parts
            form = RequestForm(system, role, duration, ticket, reason, breakglass=breakglass)
            request = create_request(ctx, user, form)
        except InvalidRequest as exc:
            ack(text=views.problem_text(exc.errors, exc.mentions))
            return
        route = policy_route(ctx.policy, request)
        ack(text=views.accepted_text(request, route.rule))
        _submit(request, route)

    def _submit(request: AccessRequest, route: PolicyRoute | None = None) -> None:
        """The stored request's next step, after the ack, by its route (decided here once and
        followed by submit_request). Posting the card for approvers can wait for a pause in
        Slack's requests; a grant the policy may make at once (break-glass, staging,
        auto-approve, on call) is what the requester is waiting on: it starts now."""
        route = route or policy_route(ctx.policy, request)
        queue = later.when_quiet if route.waits_for_approvers else later
        queue(submit_request, ctx, request.id, route)

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

    def _cancel(ack: Ack, user: str, ids: list[str]) -> None:
        if not ids:
            ack(text="Say which request: `/prod-access cancel R-…` (see `/prod-access list`).")
            return
        try:
            request = cancel_request(ctx, ids[0].upper(), user)
        except OperationError as exc:
            ack(text=_refusal(exc))
            return
        ack(text=f"Request `{request.id}` is cancelled.")

    @app.event("app_home_opened")
    def on_home_opened(ack: Ack, event: dict) -> None:
        ack()
        if event.get("tab", "home") == "home":
            later.when_quiet(ctx.notify.home_opened, event["user"])

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
            view=_modal(body["user"]["id"], system, role),
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
            breakglass=bool(_checked(values, Block.breakglass)),
        )
        try:
            request = create_request(ctx, body["user"]["id"], form)
        except InvalidRequest as exc:
            ack(response_action="errors", errors=_field_errors(values, exc.errors))
            return
        ack()
        _submit(request)

    # --- the approval card (and the approver's Home tab) ---
    @app.action(Action.approve)
    def on_approve(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(_approve, action["value"], body, client)

    def _approve(request_id: str, body: dict, client: WebClient) -> None:
        _try(lambda: approve_and_grant(ctx, request_id, body["user"]["id"]), client, body)

    @app.action(Action.deny)
    def on_deny(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(
            _open_modal,
            AccessRequest,
            action["value"],
            lambda request, user: check_may_deny(ctx, request, user),
            views.deny_modal,
            body,
            client,
        )

    @app.view(Callback.deny_modal)
    def on_deny_submit(ack: Ack, body: dict, view: dict) -> None:
        reason = _value(view["state"]["values"], Block.deny_reason) or ""
        try:
            deny_request(ctx, view["private_metadata"], body["user"]["id"], reason)
        except OperationError as exc:
            ack(response_action="errors", errors={Block.deny_reason: str(exc)})
            return
        ack()

    @app.action(Action.retry_grant)
    def on_retry_grant(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(_try, lambda: retry_grant(ctx, action["value"], body["user"]["id"]), client, body)

    @app.action(Action.breakglass_ack)
    @app.action(Action.breakglass_flag)
    def on_breakglass_review(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        outcome = (
            ReviewState.flagged
            if action["action_id"] == Action.breakglass_flag
            else ReviewState.acknowledged
        )
        user = body["user"]["id"]
        later(_try, lambda: review_breakglass(ctx, action["value"], user, outcome), client, body)

    # --- the requester's DM ---
    @app.action(Action.end_session)
    def on_end_session(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        later(
            _try, lambda: end_session(ctx, action["value"], EndReason.released, user), client, body
        )

    @app.action(Action.extend_session)
    def on_extend(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(
            _open_modal,
            AccessSession,
            action["value"],
            check_extender,
            lambda session: views.extend_modal(
                ctx.policy, session, extension_room(ctx.policy, session)
            ),
            body,
            client,
        )

    @app.view(Callback.extend_modal)
    def on_extend_submit(ack: Ack, body: dict, view: dict) -> None:
        values = view["state"]["values"]
        try:
            request = request_extension(
                ctx,
                view["private_metadata"],
                body["user"]["id"],
                _value(values, Block.duration) or "",
                _value(values, Block.reason) or "",
            )
        except InvalidRequest as exc:
            ack(response_action="errors", errors=_field_errors(values, exc.errors))
            return
        except OperationError as exc:
            ack(response_action="errors", errors={Block.duration: str(exc)})
            return
        ack()
        _submit(request)

    @app.action(Action.cancel_request)
    def on_cancel(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        later(_try, lambda: cancel_request(ctx, action["value"], user), client, body)

    @app.action(Action.open_closeout)
    def on_open_closeout(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(
            _open_modal,
            AccessSession,
            action["value"],
            check_closeout_writer,
            views.closeout_modal,
            body,
            client,
        )

    def _open_modal(
        model: Any,  # AccessRequest or AccessSession
        row_id: str,
        check: Callable[[Any, str], None],
        build: Callable[[Any], dict],
        body: dict,
        client: WebClient,
    ) -> None:
        """A button that opens a modal: the clicker is checked first (refused: told so)."""

        def checked() -> Any:
            row = read_row(ctx, model, row_id)
            check(row, body["user"]["id"])
            return row

        row = _try(checked, client, body)
        if row is not None:
            client.views_open(trigger_id=body["trigger_id"], view=build(row))

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
            session = read_row(ctx, AccessSession, view["private_metadata"])
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
                _tell(client, body, _refusal(exc))
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


def _refusal(exc: OperationError) -> str:
    """A refusal as mrkdwn: its text escaped, the people it names still mentioned."""
    return f":no_entry: {with_mentions(str(exc), exc.mentions)}"


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


def _checked(values: dict, block_prefix: str) -> list[str]:
    """The values ticked in the checkboxes of the block `block_prefix` (or `block_prefix:…`)."""
    for block_id, actions in values.items():
        if block_id == block_prefix or block_id.startswith(block_prefix + ":"):
            for element in actions.values():
                return [o["value"] for o in element.get("selected_options") or []]
    return []


def _selected(values: dict) -> tuple[str | None, str | None]:
    return _value(values, Block.system), _value(values, Block.role)


def _field_errors(values: dict, errors: dict[str, str]) -> dict[str, str]:
    """Map field names to the block ids the modal uses (role/duration carry suffixes)."""
    out: dict[str, str] = {}
    # A field without a block of its own (no role chosen yet, no break-glass box): the top one.
    fallback = Block.system if Block.system in values else next(iter(values), "")
    for field, message in errors.items():
        block_id = next((b for b in values if b == field or b.startswith(field + ":")), fallback)
        out.setdefault(block_id, message)  # the first problem of a block is the one to fix first
    return out
