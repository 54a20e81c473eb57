"""The approval card (in the approvers' channel, and on an approver's Home tab): Approve, Deny
(which opens the deny modal for a reason), Retry a failed grant, and a break-glass review's
Acknowledge or Flag.

Each click is acked at once; the operation it calls checks the clicker and the request's state
(a double-clicked Approve grants once) and its refusal goes back to the clicker alone. An
Approve on a role with step-up is answered, to the clicker alone, with the "Confirm with
<identity provider>" link instead (app/operations/step_up.py); the approval counts after it.
"""

from __future__ import annotations

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.context import AppContext
from app.models import AccessRequest, ReviewState
from app.operations.decide_request import check_may_deny, deny_request
from app.operations.errors import OperationError
from app.operations.grant_session import retry_grant
from app.operations.review_breakglass import review_breakglass
from app.operations.step_up import StepUpLink, approve_or_start
from app.slack.after_ack import AfterAck
from app.slack.blocks import modals, step_up
from app.slack.ids import Action, Block, Callback
from app.slack.listeners import forms, replies


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the approval card's buttons and the deny modal."""

    def approve(request_id: str, body: dict, client: WebClient) -> None:
        user = body["user"]["id"]
        result = replies.attempt(lambda: approve_or_start(ctx, request_id, user), client, body)
        if isinstance(result, StepUpLink):
            replies.tell(client, body, step_up.confirm_text(result), step_up.confirm_blocks(result))

    @app.action(Action.approve)
    def on_approve(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        later(approve, action["value"], body, client)

    @app.action(Action.step_up_open)
    def on_step_up_open(ack: Ack) -> None:
        ack()  # the button is a link: the browser does the rest

    app.action(Action.deny)(
        replies.modal_button(
            ctx,
            later,
            AccessRequest,
            lambda request, user: check_may_deny(ctx, request, user),
            modals.deny_modal,
        )
    )
    app.action(Action.retry_grant)(
        replies.operation_button(later, lambda sid, user: retry_grant(ctx, sid, user))
    )
    app.action(Action.breakglass_ack)(
        replies.operation_button(
            later, lambda rid, user: review_breakglass(ctx, rid, user, ReviewState.acknowledged)
        )
    )
    app.action(Action.breakglass_flag)(
        replies.operation_button(
            later, lambda rid, user: review_breakglass(ctx, rid, user, ReviewState.flagged)
        )
    )

    @app.view(Callback.deny_modal)
    def on_deny_submit(ack: Ack, body: dict, view: dict) -> None:
        reason = forms.value(view["state"]["values"], Block.deny_reason) or ""
        try:
            deny_request(ctx, view["private_metadata"], body["user"]["id"], reason)
        except OperationError as exc:
            ack(response_action="errors", errors={Block.deny_reason: str(exc)})
            return
        ack()
