"""The requester's DM about their access: End now, Cancel (a request still waiting), and the
closeout (the modal that asks what was changed, and its submit).

End now and Cancel are acked at once and run after the ack; the closeout's writer is checked
before the ack so the modal shows a refusal in place, and the note is recorded after it.
"""

from __future__ import annotations

from slack_bolt import Ack, App

from app.context import AppContext
from app.models import AccessSession, EndReason
from app.operations.common import read_row
from app.operations.decide_request import cancel_request
from app.operations.end_session import end_session
from app.operations.errors import OperationError
from app.operations.record_closeout import check_closeout_writer, record_closeout
from app.slack.after_ack import AfterAck
from app.slack.blocks import modals
from app.slack.ids import Action, Block, Callback
from app.slack.listeners import forms, replies


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the DM's buttons and the closeout modal."""
    app.action(Action.end_session)(
        replies.operation_button(
            later, lambda sid, user: end_session(ctx, sid, EndReason.released, user)
        )
    )
    app.action(Action.cancel_request)(
        replies.operation_button(later, lambda rid, user: cancel_request(ctx, rid, user))
    )
    app.action(Action.open_closeout)(
        replies.modal_button(
            ctx, later, AccessSession, check_closeout_writer, modals.closeout_modal
        )
    )

    @app.view(Callback.closeout_modal)
    def on_closeout_submit(ack: Ack, body: dict, view: dict) -> None:
        values = view["state"]["values"]
        changes = (forms.value(values, Block.changes) or "").strip()
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
            replies.attempt,
            lambda: record_closeout(
                ctx,
                view["private_metadata"],
                body["user"]["id"],
                changes,
                forms.value(values, Block.followups) or "",
            ),
        )
