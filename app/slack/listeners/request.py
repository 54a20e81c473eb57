"""The request modal (its system and role choices, its submit) and the extend modal (opened
from the requester's DM, and its submit): a request is stored before the ack, so the modal
closes only on a request that exists, and is submitted after it.

Submitting follows the request's PolicyRoute, decided here once: a request the approvers decide
has its card posted when Slack is quiet (`later.when_quiet`); a grant the policy makes at once
(break-glass, staging, auto_approve, on call) is what the requester waits on, so it starts now.
A break-glass whose system says `breakglass.step_up` is granted only after the requester's
fresh login: they get the "Confirm with <identity provider>" link instead (`breakglass_link`).
"""

from __future__ import annotations

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.context import AppContext
from app.models import AccessRequest, AccessSession, Route
from app.operations import people
from app.operations.errors import InvalidRequest, OperationError
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
from app.operations.step_up import StepUpLink, start_breakglass
from app.slack.after_ack import AfterAck
from app.slack.blocks import modals, step_up
from app.slack.ids import Action, Block, Callback
from app.slack.listeners import forms, replies


def request_modal(
    ctx: AppContext, user: str, system: str | None = None, role: str | None = None
) -> dict:
    """The request modal for `user` (the systems they may ask for), with what they chose so far."""
    chosen = ctx.policy.system(system) if system else None
    return modals.request_modal(
        ctx.policy,
        system,
        role,
        systems=people.requestable(ctx, user),
        breakglass=chosen is not None and people.may_break_glass(ctx, chosen, user),
    )


def submit(
    ctx: AppContext, later: AfterAck, request: AccessRequest, route: PolicyRoute | None = None
) -> None:
    """The stored request's next step, after the ack, by its route (`route`: as the caller
    already decided it to answer the requester; otherwise decided here)."""
    if route is None:
        route = policy_route(ctx.policy, request)
    queue = later.when_quiet if route.waits_for_approvers else later
    queue(submit_request, ctx, request.id, route)


def breakglass_link(
    ctx: AppContext, request: AccessRequest, route: PolicyRoute
) -> StepUpLink | None:
    """The requester's link to confirm a break-glass that needs step-up; None otherwise."""
    if route.rule is None or route.rule[0] != Route.breakglass:
        return None
    return start_breakglass(ctx, request.id)


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the request and extend modals' listeners."""

    @app.action(Action.system_select)
    @app.action(Action.role_select)
    def on_modal_choice(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        view = body["view"]
        system, role = forms.selected(view["state"]["values"])
        later(
            client.views_update,
            view_id=view["id"],
            hash=view.get("hash"),
            view=request_modal(ctx, body["user"]["id"], system, role),
        )

    @app.view(Callback.request_modal)
    def on_request_submit(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        values = view["state"]["values"]
        system, role = forms.selected(values)
        form = RequestForm(
            system=system or "",
            role=role or "",
            duration=forms.value(values, Block.duration) or "",
            ticket=forms.value(values, Block.ticket) or "",
            reason=forms.value(values, Block.reason) or "",
            breakglass=bool(forms.checked(values, Block.breakglass)),
        )
        try:
            request = create_request(ctx, body["user"]["id"], form)
        except InvalidRequest as exc:
            ack(response_action="errors", errors=forms.field_errors(values, exc.errors))
            return
        ack()
        route = policy_route(ctx.policy, request)
        link = breakglass_link(ctx, request, route)
        if link is None:
            submit(ctx, later, request, route)
            return
        later(
            client.chat_postMessage,
            channel=request.requester_id,
            text=step_up.confirm_text(link, breakglass=True),
            blocks=step_up.confirm_blocks(link, breakglass=True),
        )

    app.action(Action.extend_session)(
        replies.modal_button(
            ctx,
            later,
            AccessSession,
            check_extender,
            lambda session: modals.extend_modal(
                ctx.policy, session, extension_room(ctx.policy, session)
            ),
        )
    )

    @app.view(Callback.extend_modal)
    def on_extend_submit(ack: Ack, body: dict, view: dict) -> None:
        values = view["state"]["values"]
        try:
            request = request_extension(
                ctx,
                view["private_metadata"],
                body["user"]["id"],
                forms.value(values, Block.duration) or "",
                forms.value(values, Block.reason) or "",
            )
        except InvalidRequest as exc:
            ack(response_action="errors", errors=forms.field_errors(values, exc.errors))
            return
        except OperationError as exc:
            ack(response_action="errors", errors={Block.duration: str(exc)})
            return
        ack()
        submit(ctx, later, request)
