"""Out of office, on the Home tab: "Hand my approvals to someone" opens the modal (the approver
to hand them to, the last day); its submit makes the delegation; End ends one.

The person who clicks is the delegator (or, for End, the delegator or the delegate): Slack says
who clicked, and the operation checks again on every click that they may (app/operations/
delegation.py); a refusal goes back to them alone, or under the field in the modal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app import clock
from app.context import AppContext
from app.operations import delegation
from app.operations.errors import NotAllowed, OperationError
from app.slack.after_ack import AfterAck
from app.slack.blocks.delegation import delegate_modal
from app.slack.ids import Action, Block, Callback
from app.slack.listeners import replies


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the Home tab's delegation buttons and the modal."""

    def open_modal(body: dict, client: WebClient) -> None:
        def check() -> bool:
            if not delegation.systems_approved_by(ctx, body["user"]["id"]):
                raise NotAllowed("You approve no system, so there are no approvals to hand on.")
            return True

        if replies.attempt(check, client, body):
            client.views_open(
                trigger_id=body["trigger_id"], view=delegate_modal(clock.now().date())
            )

    @app.action(Action.delegate_open)
    def on_delegate_open(ack: Ack, body: dict, client: WebClient) -> None:
        ack()
        later(open_modal, body, client)

    app.action(Action.delegation_end)(
        replies.operation_button(
            later, lambda did, user: delegation.end_delegation(ctx, did, user, user_id=user)
        )
    )

    @app.view(Callback.delegate_modal)
    def on_delegate_submit(ack: Ack, body: dict, view: dict) -> None:
        values = view["state"]["values"]
        to_id = (values.get(Block.delegate_to) or {}).get(Action.delegate_to_input, {})
        day = (values.get(Block.delegate_until) or {}).get(Action.delegate_until_input, {})
        try:
            last = datetime.fromisoformat(str(day.get("selected_date"))).replace(tzinfo=UTC)
        except ValueError:
            ack(response_action="errors", errors={Block.delegate_until: "Choose the last day."})
            return
        user = body["user"]["id"]
        try:
            delegation.create_delegation(
                ctx, user, str(to_id.get("selected_user") or ""), last + timedelta(days=1), user
            )
        except OperationError as exc:
            ack(response_action="errors", errors={Block.delegate_to: str(exc)})
            return
        ack()
