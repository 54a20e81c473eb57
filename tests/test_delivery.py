"""The outbox on its own (no Slack, no HTTP): notices delivered as typed kinds, kept when
delivery fails, delivered again in order, and rows kept by an older version still understood.
The whole path through Slack is in test_resilience.py."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app import clock
from app import db as database
from app.config import Settings
from app.delivery.notices import TRACKER_KINDS, NoticeArg, NoticeKind, Notifier, QuietNotifier
from app.delivery.outbox import Outbox
from app.models import AccessRequest, PendingNotice, RequestState
from app.slack.delivery import deliver_to
from app.slack.notifier import SlackNotifier


class Target:
    """Records what it delivers; fails while `down`."""

    def __init__(self) -> None:
        self.delivered: list[tuple[NoticeKind, tuple[str, ...]]] = []
        self.down = False

    def __call__(self, kind: NoticeKind, args: tuple[NoticeArg, ...]) -> None:
        if self.down:
            raise ConnectionError("slack is down")
        self.delivered.append((kind, tuple(a if isinstance(a, str) else a.id for a in args)))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    database.upgrade(url)
    return Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]


@pytest.fixture
def target() -> Target:
    return Target()


@pytest.fixture
def outbox(settings: Settings, target: Target) -> Iterator[Outbox]:
    sessions = database.make_sessionmaker(database.make_engine(settings.database_url))
    yield Outbox(sessions, settings, target)


def _request(outbox: Outbox, request_id: str) -> AccessRequest:
    with database.transaction(outbox.db) as db:
        row = AccessRequest(
            id=request_id,
            requester_id="U0BOB",
            system_id="orders-db",
            role_id="read",
            duration_seconds=900,
            ticket="PAY-1",
            reason="look",
            state=RequestState.pending,
            created_at=clock.now(),
        )
        db.add(row)
    return row


def _kept(outbox: Outbox) -> list[PendingNotice]:
    with database.reading(outbox.db) as db:
        return list(db.scalars(select(PendingNotice).order_by(PendingNotice.id)))


def test_every_notifier_call_is_sent_as_its_own_kind() -> None:
    sent: list[tuple[NoticeKind, tuple[NoticeArg, ...]]] = []

    class Recording(Notifier):
        def send(self, kind: NoticeKind, *args: NoticeArg) -> None:
            sent.append((kind, args))

    notifier = Recording()
    for kind in NoticeKind:
        arity = len(inspect.signature(getattr(notifier, kind.value)).parameters)
        getattr(notifier, kind.value)(*[f"arg{n}" for n in range(arity)])
    assert [kind for kind, _ in sent] == list(NoticeKind)
    assert dict(sent)[NoticeKind.drift_found] == ("arg0", "arg1")
    QuietNotifier().session_granted(None)  # type: ignore[arg-type]  # drops it, raises nothing


def test_slack_delivers_every_kind() -> None:
    """A kind without a Slack method would be kept and given up on: every kind has one (but
    the comments on tickets, which go to the tracker: app/delivery/tickets.py)."""
    calls: list[str] = []
    to_slack = [kind for kind in NoticeKind if kind not in TRACKER_KINDS]

    class Slack:
        def __getattr__(self, name: str) -> object:
            return lambda *args: calls.append(name)

    deliver = deliver_to(Slack())  # type: ignore[arg-type]
    for kind in to_slack:
        deliver(kind, ())
    assert calls == [kind.value for kind in to_slack]
    public = {
        name
        for name, _ in inspect.getmembers(SlackNotifier, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {kind.value for kind in to_slack}


def test_a_notice_is_delivered_at_once_and_nothing_is_kept(outbox: Outbox, target: Target) -> None:
    request = _request(outbox, "R-1")
    outbox.approval_counted(request, "U0LEAD1")
    assert target.delivered == [(NoticeKind.approval_counted, ("R-1", "U0LEAD1"))]
    assert _kept(outbox) == []


def test_a_failed_notice_is_kept_and_later_ones_wait_behind_it(
    outbox: Outbox, target: Target
) -> None:
    request = _request(outbox, "R-1")
    target.down = True
    outbox.request_created(request)
    target.down = False
    outbox.request_decided(request)  # must not overtake the card
    outbox.home_opened("U0LEAD1")  # about no request: goes at once
    assert target.delivered == [(NoticeKind.home_opened, ("U0LEAD1",))]
    kept = _kept(outbox)
    assert [(row.notice, row.request_id, row.attempts) for row in kept] == [
        ("request_created", "R-1", 1),
        ("request_decided", "R-1", 0),
    ]
    assert kept[0].last_error == "ConnectionError('slack is down')"

    assert outbox.resend().sent == []  # the card is not due yet (backoff); nor what follows
    clock.travel(timedelta(minutes=5))
    assert outbox.resend().sent == [kept[0].id, kept[1].id]
    assert target.delivered[1:] == [
        (NoticeKind.request_created, ("R-1",)),
        (NoticeKind.request_decided, ("R-1",)),
    ]
    assert _kept(outbox) == []
    outbox.request_decided(request)  # nothing waits any more: straight out
    assert target.delivered[-1] == (NoticeKind.request_decided, ("R-1",))


def test_a_row_kept_by_an_older_version_is_delivered(outbox: Outbox, target: Target) -> None:
    """Rows written before NoticeKind existed stored the method name and this JSON shape."""
    _request(outbox, "R-1")
    with database.transaction(outbox.db) as db:
        db.add(
            PendingNotice(
                notice="approval_counted",
                request_id="R-1",
                args_json=json.dumps(
                    {"args": [{"request": "R-1"}, {"value": "U0LEAD2"}], "kwargs": {}}
                ),
                attempts=1,
                created_at=clock.now(),
                next_attempt_at=clock.now(),
            )
        )
    assert len(outbox.resend().sent) == 1
    assert target.delivered == [(NoticeKind.approval_counted, ("R-1", "U0LEAD2"))]


def test_a_row_of_an_unknown_kind_is_given_up_not_retried_forever(
    outbox: Outbox, target: Target
) -> None:
    with database.transaction(outbox.db) as db:
        db.add(
            PendingNotice(
                notice="no_such_notice",
                args_json='{"args": [], "kwargs": {}}',
                created_at=clock.now(),
                next_attempt_at=clock.now(),
            )
        )
    result = outbox.resend()
    assert len(result.given_up) == 1 and result.sent == []
    (row,) = _kept(outbox)
    assert row.failed_at is not None and row.last_error == "no notice is called no_such_notice"
    assert target.delivered == []


def test_a_notice_about_a_deleted_row_is_given_up(outbox: Outbox, target: Target) -> None:
    request = _request(outbox, "R-1")
    target.down = True
    outbox.request_created(request)
    with database.transaction(outbox.db) as db:
        db.delete(db.get(AccessRequest, "R-1"))
    target.down = False
    clock.travel(timedelta(minutes=5))
    assert len(outbox.resend().given_up) == 1
    assert target.delivered == []


def test_a_notice_still_failing_is_given_up_after_the_last_attempt(
    outbox: Outbox, target: Target, settings: Settings
) -> None:
    request = _request(outbox, "R-1")
    target.down = True
    outbox.request_created(request)
    given_up: list[int] = []
    for _ in range(settings.notice_max_attempts):
        clock.travel(timedelta(hours=2))
        given_up += outbox.resend().given_up
    (row,) = _kept(outbox)
    assert given_up == [row.id] and row.failed_at is not None
    assert row.attempts == settings.notice_max_attempts
