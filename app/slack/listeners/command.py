"""The /prod-access command: no text opens the request modal; `help`, `list` (or `status`),
`done [S-…]`, `cancel R-…`; anything else is the quick form
`/prod-access <system> <role> <duration> <ticket> <reason…>` (QUICK_FIELDS), with
BREAKGLASS_FLAG among its first words for a break-glass request.

Every answer is the ack's own text (the person alone sees it). A quick request is stored before
the ack, which says what happens next by the route the policy will take.
"""

from __future__ import annotations

from slack_bolt import Ack, App
from slack_sdk import WebClient

from app.context import AppContext
from app.db import transaction
from app.models import EndReason
from app.operations import people, queries
from app.operations.decide_request import cancel_request
from app.operations.end_session import end_session
from app.operations.errors import InvalidRequest, OperationError
from app.operations.request_access import RequestForm, create_request, policy_route
from app.slack.after_ack import AfterAck
from app.slack.blocks import answers, step_up
from app.slack.listeners import replies
from app.slack.listeners.request import breakglass_link, request_modal, submit
from app.slack.text import escape, unescape

QUICK_FIELDS = ("system", "role", "duration", "ticket", "reason")
BREAKGLASS_FLAG = "--breakglass"


def register(app: App, ctx: AppContext, later: AfterAck) -> None:
    """Attach the /prod-access command."""

    @app.command("/prod-access")
    def on_command(ack: Ack, command: dict, client: WebClient) -> None:
        user = command["user_id"]
        text = unescape(command.get("text") or "").strip()
        word = text.split(maxsplit=1)[0].lower() if text else ""
        if not text:
            ack()
            later(
                client.views_open, trigger_id=command["trigger_id"], view=request_modal(ctx, user)
            )
        elif word == "help":
            ack(text=answers.help_text(ctx.policy, people.requestable(ctx, user)))
        elif word in ("list", "status"):
            with transaction(ctx.db) as db:
                answer = answers.list_text(
                    queries.pending_requests(db, user), queries.open_sessions(db, user)
                )
            ack(text=answer)
        elif word == "done":
            _done(ctx, later, ack, user, text.split()[1:])
        elif word == "cancel":
            _cancel(ctx, ack, user, text.split()[1:])
        else:
            _quick_request(ctx, later, ack, user, text)


def _quick_request(ctx: AppContext, later: AfterAck, ack: Ack, user: str, text: str) -> None:
    words = text.split()
    breakglass = BREAKGLASS_FLAG in words[: len(QUICK_FIELDS)]
    if breakglass:
        words.remove(BREAKGLASS_FLAG)
    parts = " ".join(words).split(maxsplit=4)
    if len(parts) < len(QUICK_FIELDS):
        missing = ", ".join(QUICK_FIELDS[len(parts) :])
        ack(text=answers.problem_text({"missing": f"Missing: {missing}."}))
        return
    try:
        # stored before we say so
        system, role, duration, ticket, reason = parts
        form = RequestForm(system, role, duration, ticket, reason, breakglass=breakglass)
        request = create_request(ctx, user, form)
    except InvalidRequest as exc:
        ack(text=answers.problem_text(exc.errors, exc.mentions))
        return
    route = policy_route(ctx.policy, request)
    link = breakglass_link(ctx, request, route)
    if link is not None:  # granted after the requester's fresh login (step-up)
        ack(
            text=step_up.confirm_text(link, breakglass=True),
            blocks=step_up.confirm_blocks(link, breakglass=True),
        )
        return
    ack(text=answers.accepted_text(request, route.rule))
    submit(ctx, later, request, route)


def _done(ctx: AppContext, later: AfterAck, ack: Ack, user: str, ids: list[str]) -> None:
    with transaction(ctx.db) as db:
        mine = [s.id for s in queries.active_sessions(db, user)]
    targets = [i for i in ids if i in mine] if ids else mine
    if not targets:
        wanted = f" called {escape(' '.join(ids))}" if ids else ""
        ack(text=f"You have no active access{wanted} to end.")
        return
    ack(text="Ending " + ", ".join(f"`{t}`" for t in targets) + " now.")
    for session_id in targets:
        later(
            replies.attempt, lambda sid=session_id: end_session(ctx, sid, EndReason.released, user)
        )


def _cancel(ctx: AppContext, ack: Ack, user: str, ids: list[str]) -> None:
    if not ids:
        ack(text="Say which request: `/prod-access cancel R-…` (see `/prod-access list`).")
        return
    try:
        request = cancel_request(ctx, ids[0].upper(), user)
    except OperationError as exc:
        ack(text=replies.refusal(exc))
        return
    ack(text=f"Request `{request.id}` is cancelled.")
