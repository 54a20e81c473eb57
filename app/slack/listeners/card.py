"""The approval card (in the approvers' channel, and on an approver's Home tab): Approve, Deny
(which opens the deny modal for a reason), Retry a failed grant, and a break-glass review's
Acknowledge or Flag.

Each click is acked at once; the operation it calls checks the clicker and the request's state
(a double-clicked Approve grants once) and its refusal goes back to the clicker alone.
"""

from __future__ import annotations

from slack_bolt import Ack, App

from app.context import AppContext
from app.models import AccessRequest, ReviewState
from app.operations.decide_request import approve_and_grant, check_may_deny, deny_request
from app.operations.errors import OperationError
from app.operations.grant_session import retry_grant
from app.operations.review_breakglass import review_breakglass
from app.slack.after_ack import AfterAck
from app.slack.blocks import modals
from app.slack.ids import Action, Block, Callback
from app.slack.listeners import forms, replies


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the approval card's buttons and the deny modal."""
    app.action(Action.approve)(
        replies.operation_button(later, lambda rid, user: approve_and_grant(ctx, rid, user))
    )
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
