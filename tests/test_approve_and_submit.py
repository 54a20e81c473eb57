"""The two chains that end in a grant, through the operations alone (no HTTP, no Slack): a new
request submitted by the route decided once (`submit_request`), and an approver's click
(`approve_and_grant`). SQLite, a provider and a notifier that record what they are asked."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.context import AppContext
from app.db import make_engine, make_sessionmaker, transaction, upgrade
from app.delivery.notices import NoticeArg, NoticeKind, Notifier
from app.models import AccessRequest, AccessSession, RequestState, Route, SessionState
from app.operations.decide_request import approve_and_grant
from app.operations.errors import ConflictError, NotAllowed
from app.operations.request_access import (
    PolicyRoute,
    RequestForm,
    create_request,
    policy_route,
    submit_request,
)
from app.policy import load_policy
from app.providers.base import AccessGrant
from app.slack.listeners import replies
from tests.fakes.policy import ALICE, BOB, LEAD1, LEAD2, write_policy

CLICK = Path(__file__).parent / "fixtures" / "slack" / "payloads" / "docs_block_actions.json"
EXTRA_SYSTEMS = f"""\
  - id: metrics
    name: Metrics
    provider: webhook
    config: {{url: 'http://127.0.0.1:9/hook', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}
    identity: '{{email}}'
    approvers: [{LEAD1}]
    roles:
      - {{id: read, grant: metrics-viewer, auto_approve: true, max_duration: 30m}}
      - {{id: deploy, grant: metrics-deployer, auto_approve_oncall: PSCHED1}}
"""


class RecordingNotifier(Notifier):
    """A Notifier that tells no one and records each notice as (kind, the id it names)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def send(self, kind: NoticeKind, *args: NoticeArg) -> None:
        subject = args[0]
        self.calls.append((kind.value, subject if isinstance(subject, str) else subject.id))


class RecordingProvider:
    """A provider that grants everything and remembers to whom."""

    def __init__(self) -> None:
        self.granted: list[tuple[str, str]] = []

    def grant(self, access: AccessGrant) -> str | None:
        self.granted.append((access.identity, access.grant))
        return None

    def revoke(self, access: AccessGrant) -> str | None:
        return None

    def check(self, access: AccessGrant) -> bool:
        return (access.identity, access.grant) in self.granted


class Directory:
    def email_for(self, user_id: str) -> str | None:
        return f"{user_id.removeprefix('U0').lower()}@example.com"

    def group_members(self, handle: str) -> set[str]:
        raise LookupError("no user groups here")

    def group_id(self, handle: str) -> str | None:
        return None


class OnCall:
    """PagerDuty as the test sets it: who is on call, and who was asked about."""

    def __init__(self, on_call: set[str]) -> None:
        self.on_call, self.asked = on_call, []

    def is_on_call(self, schedule_id: str, email: str) -> bool:
        self.asked.append((schedule_id, email))
        return email in self.on_call


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test starts from a copy (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def ctx(tmp_path: Path, migrated: Path) -> Iterator[AppContext]:
    shutil.copy(migrated, tmp_path / "bot.db")
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    policy = write_policy(tmp_path / "policy.yml", "http://127.0.0.1:9/hook", EXTRA_SYSTEMS)
    engine = make_engine(url)
    yield AppContext(
        settings=Settings(_env_file=None, database_url=url, policy_file=str(policy)),  # type: ignore[call-arg]
        policy=load_policy(policy),
        providers={"orders-api": RecordingProvider(), "metrics": RecordingProvider()},
        db=make_sessionmaker(engine),
        notify=RecordingNotifier(),
        directory=Directory(),
        oncall=OnCall({"bob@example.com"}),
    )
    engine.dispose()


def _ask(ctx: AppContext, system: str, role: str, who: str = BOB) -> AccessRequest:
    return create_request(ctx, who, RequestForm(system, role, "30m", "PAY-1", "look into it"))


def _sessions(ctx: AppContext, request_id: str) -> list[AccessSession]:
    with transaction(ctx.db) as db:
        return list(db.query(AccessSession).filter_by(request_id=request_id))


def _request(ctx: AppContext, request_id: str) -> AccessRequest:
    with transaction(ctx.db) as db:
        return db.get_one(AccessRequest, request_id)


def test_a_request_for_the_approvers_gets_its_card_and_waits(ctx: AppContext) -> None:
    request = _ask(ctx, "orders-api", "write")
    route = policy_route(ctx.policy, request)
    assert route.waits_for_approvers  # the listener posts its card when Slack is quiet
    assert submit_request(ctx, request.id, route) is None
    assert ctx.notify.calls == [("request_created", request.id)]
    assert _request(ctx, request.id).state == RequestState.pending
    assert _sessions(ctx, request.id) == []


def test_an_auto_approved_request_is_granted_at_once_and_its_card_says_so(
    ctx: AppContext,
) -> None:
    request = _ask(ctx, "metrics", "read")
    route = policy_route(ctx.policy, request)
    assert route == PolicyRoute((Route.auto, "auto_approve for read"))
    assert not route.waits_for_approvers  # the listener starts it now
    decision = submit_request(ctx, request.id, route)
    assert decision is not None and decision.session is not None
    (session,) = _sessions(ctx, request.id)
    assert session.state == SessionState.active
    assert ctx.providers["metrics"].granted == [("bob@example.com", "metrics-viewer")]
    assert ctx.notify.calls == [
        ("request_decided", request.id),
        ("request_created", request.id),  # the card, showing how it was decided
        ("session_granted", session.id),
    ]


def test_submit_follows_the_route_the_requester_was_told(ctx: AppContext) -> None:
    """The route is decided once: a caller that decided 'the approvers' gets that, even for a
    role the policy would approve, so what the requester read is what happens."""
    request = _ask(ctx, "metrics", "read")
    assert submit_request(ctx, request.id, PolicyRoute(None)) is None
    assert _request(ctx, request.id).state == RequestState.pending
    assert ctx.providers["metrics"].granted == []


def test_a_request_nobody_routed_yet_is_routed_when_submitted(ctx: AppContext) -> None:
    request = _ask(ctx, "metrics", "read")  # as found at start: stored, never submitted
    submit_request(ctx, request.id)
    assert _request(ctx, request.id).state == RequestState.approved
    assert [s.state for s in _sessions(ctx, request.id)] == [SessionState.active]


def test_the_on_call_route_still_asks_pagerduty(ctx: AppContext) -> None:
    on_call, off_call = _ask(ctx, "metrics", "deploy", BOB), _ask(ctx, "metrics", "deploy", ALICE)
    for request in (on_call, off_call):
        submit_request(ctx, request.id, policy_route(ctx.policy, request))
    assert ctx.oncall.asked == [("PSCHED1", "bob@example.com"), ("PSCHED1", "alice@example.com")]
    assert _request(ctx, on_call.id).decision_note == "on call (PSCHED1)"
    assert _request(ctx, off_call.id).state == RequestState.pending
    assert ctx.providers["metrics"].granted == [("bob@example.com", "metrics-deployer")]


def test_an_approval_grants_the_session_and_tells_everyone_in_order(ctx: AppContext) -> None:
    request = _ask(ctx, "orders-api", "write")
    submit_request(ctx, request.id, policy_route(ctx.policy, request))
    decision = approve_and_grant(ctx, request.id, LEAD1)
    assert decision.approved
    (session,) = _sessions(ctx, request.id)
    assert session.state == SessionState.active and session.expires_at is not None
    assert ctx.providers["orders-api"].granted == [("bob@example.com", "orders-admin")]
    assert ctx.notify.calls == [
        ("request_created", request.id),
        ("request_decided", request.id),
        ("session_granted", session.id),
    ]


def test_a_double_approve_grants_once_and_the_second_click_is_told_why(
    ctx: AppContext,
) -> None:
    request = _ask(ctx, "orders-api", "write")
    approve_and_grant(ctx, request.id, LEAD1)
    with pytest.raises(ConflictError, match=rf"^Request {request.id} was already approved by"):
        approve_and_grant(ctx, request.id, LEAD2)
    assert len(_sessions(ctx, request.id)) == 1
    assert ctx.providers["orders-api"].granted == [("bob@example.com", "orders-admin")]
    assert [call for call, _ in ctx.notify.calls].count("session_granted") == 1


@pytest.mark.parametrize(
    ("approver", "why"),
    [
        (BOB, "You can't approve your own request; another approver has to."),
        ("U0MALLORY", "Only the approvers of Orders API write can approve this: "),
    ],
    ids=["the requester", "not an approver"],
)
def test_a_refused_approver_is_told_why_and_nothing_is_granted(
    ctx: AppContext, approver: str, why: str
) -> None:
    request = _ask(ctx, "orders-api", "write")
    with pytest.raises(NotAllowed) as refused:
        approve_and_grant(ctx, request.id, approver)
    assert str(refused.value).startswith(why)
    assert _request(ctx, request.id).state == RequestState.pending
    assert _sessions(ctx, request.id) == []
    assert ctx.notify.calls == []


class RecordingClient:
    """The two Web API calls a refusal is told with, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []

    def chat_postEphemeral(self, **args: str) -> None:
        self.sent.append(("chat.postEphemeral", args))

    def chat_postMessage(self, **args: str) -> None:
        self.sent.append(("chat.postMessage", args))


def test_a_refused_click_on_the_card_is_answered_to_the_clicker_alone(ctx: AppContext) -> None:
    """An Approve button as card.py makes it (operation_button over approve_and_grant), given
    the click Slack sends; the work after the ack runs in place."""
    request = _ask(ctx, "orders-api", "write")
    click = json.loads(CLICK.read_text(encoding="utf-8"))
    click["user"]["id"] = BOB
    acks: list[str] = []
    client = RecordingClient()
    on_approve = replies.operation_button(
        lambda fn, *args: fn(*args), lambda rid, user: approve_and_grant(ctx, rid, user)
    )
    on_approve(lambda: acks.append("ack"), click, {"value": request.id}, client)
    assert acks == ["ack"]
    assert client.sent == [
        (
            "chat.postEphemeral",
            {
                "channel": "CBR2V3XEX",
                "user": BOB,
                "text": ":no_entry: You can't approve your own request; another approver has to.",
            },
        )
    ]
    assert _sessions(ctx, request.id) == []
