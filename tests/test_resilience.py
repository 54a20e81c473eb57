"""Slack trouble and stopping never cost a revoke, and never lose a notice.

- The bot's Web API client retries a rate limit (429 + Retry-After) and a 500/503 itself.
- A notice Slack still refuses is kept in `pending_notices` and sent again once Slack is back;
  the revoke it is about has already happened (revoke first, notify after).
- In the running bot a slow Slack never holds up the expiry sweep.
- SIGTERM: the provider call in flight completes and is recorded, nothing new starts, exit 0.

The harness tests drive operations in the test's thread; the real `prod-access serve` process
(gunicorn, as the Procfile runs it) shows the serving behaviour: notice lanes, timers, signals.
"""

from __future__ import annotations

import functools
import itertools
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, create_engine, select, text

from app import clock
from app.db import normalize_url, transaction
from app.delivery import outbox as outbox_module
from app.delivery.outbox import Outbox
from app.jobs.notices import resend_pending_notices
from app.models import AccessSession, PendingNotice, SessionState
from tests.blocks_helpers import offers, says, shows
from tests.conftest import (
    ALICE,
    BOB,
    LEAD1,
    SIGNING_SECRET,
    BotHarness,
    eventually,
)
from tests.fakes.serve import ServeProcess, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import sign, text_input
from tests.fakes.webhook_receiver import WebhookReceiver

SLACK_WRITES = ("chat.update", "chat.postMessage")


# --- helpers: the bot under the harness ---------------------------------------------------


def _granted(bot: BotHarness, text: str, user: str = BOB) -> AccessSession:
    request_id = bot.quick_request(text, user)
    assert bot.send.click("approve_request", request_id, LEAD1).status == 200
    session = bot.wait_session(request_id, SessionState.active)
    bot.slack.wait_for(  # the grant's notice is going out (it comes after the state change)
        "chat.postMessage",
        lambda a: a.get("channel") == user and offers(a.get("blocks"), "end_session"),
    )
    _quiet(bot.slack)
    return session


def _quiet(slack: FakeSlack, for_seconds: float = 0.3) -> None:
    """Wait until Slack has had no call for a moment: the notices in flight are done."""
    seen = [len(slack.calls), time.monotonic()]

    def settled() -> bool:
        count = len(slack.calls)
        if count != seen[0]:
            seen[:] = [count, time.monotonic()]
        return time.monotonic() - seen[1] >= for_seconds

    eventually(settled, what="Slack quiet")


def _pending(bot: BotHarness) -> list[PendingNotice]:
    with transaction(bot.ctx.db) as db:
        return list(db.scalars(select(PendingNotice).order_by(PendingNotice.id)))


def _card_posts(slack: FakeSlack) -> list[dict]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.get("channel") == "C0APPROVALS" and offers(c.get("blocks"), "approve_request")
    ]


def _in_thread(slack: FakeSlack, card_ts: str) -> list[str]:
    return [c["text"] for c in slack.calls_to("chat.postMessage") if c.get("thread_ts") == card_ts]


def _slack_down(slack: FakeSlack) -> None:
    """Every card update and message answers 503 (slack_sdk retries each twice)."""
    for method in SLACK_WRITES:
        slack.fail(method, "service_unavailable", times=1000, status=503)


# --- retries inside one Web API call ------------------------------------------------------


def test_card_is_posted_when_slack_rate_limits_the_first_try(sqlite_bot: BotHarness) -> None:
    sqlite_bot.slack.fail("chat.postMessage", "ratelimited", times=1, status=429)
    request_id = sqlite_bot.quick_request("orders-api write 30m PAY-184 restart worker", BOB)
    posts = _card_posts(sqlite_bot.slack)
    assert len(posts) == 2  # refused with Retry-After: 1, then sent again by the client
    assert shows(posts[-1]["blocks"], request_id)
    assert sqlite_bot.request(request_id).card_ts
    assert _pending(sqlite_bot) == []


@pytest.mark.parametrize("status", [500, 503])
def test_card_is_posted_when_slack_fails_the_first_try_with_a_server_error(
    sqlite_bot: BotHarness, status: int
) -> None:
    sqlite_bot.slack.fail("chat.postMessage", "internal_error", times=1, status=status)
    request_id = sqlite_bot.quick_request("orders-api read 15m PAY-185 look at logs", BOB)
    assert len(_card_posts(sqlite_bot.slack)) == 2
    assert sqlite_bot.request(request_id).card_ts
    assert _pending(sqlite_bot) == []


# --- the outbox ---------------------------------------------------------------------------


def test_slack_outage_never_stops_a_revoke_and_the_notice_is_sent_once_slack_is_back(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    session = _granted(bot, "orders-api write 30m PAY-40 rotate keys")
    card_ts = bot.request(session.request_id).card_ts
    assert card_ts
    bot.slack.clear()
    _slack_down(bot.slack)

    clock.travel(timedelta(minutes=30, seconds=1))
    assert bot.sweep().expired == [session.id]

    assert webhook.actions() == ["grant", "revoke"]
    ended = bot.wait_session(session.request_id, SessionState.ended)
    assert ended.end_reason == "expired"
    [kept] = _pending(bot)
    assert (kept.notice, kept.request_id, kept.session_id) == (
        "session_ended",
        session.request_id,
        session.id,
    )
    assert kept.attempts == 1 and kept.failed_at is None
    assert kept.last_error == "service_unavailable (HTTP 503)"
    assert len(bot.slack.calls_to("chat.update")) == 3  # the try and slack_sdk's two retries
    assert bot.slack.calls_to("chat.postMessage") == []  # the notice stopped at the card

    bot.slack.clear()  # Slack is back
    assert resend_pending_notices(bot.ctx).sent == []  # not before its backoff
    clock.travel(timedelta(minutes=2))
    assert resend_pending_notices(bot.ctx).sent == [kept.id]

    update = bot.slack.wait_for("chat.update", lambda a: a["ts"] == card_ts)[-1]
    assert shows(update["blocks"], "Ended") and not shows(update["blocks"], "Active")
    assert _in_thread(bot.slack, card_ts), "the card's thread says the access ended"
    bot.slack.wait_for(
        "chat.postMessage",
        lambda a: a.get("channel") == BOB and offers(a.get("blocks"), "open_closeout"),
    )
    assert _pending(bot) == []


def test_while_a_notice_waits_for_slack_later_ones_of_the_same_access_queue_behind_it(
    sqlite_bot: BotHarness,
) -> None:
    bot = sqlite_bot
    session = _granted(bot, "orders-api write 30m PAY-41 rotate keys")
    card_ts = bot.request(session.request_id).card_ts
    _slack_down(bot.slack)
    clock.travel(timedelta(minutes=30, seconds=1))
    bot.sweep()
    bot.wait_session(session.request_id, SessionState.ended)
    bot.slack.clear()  # Slack is back, but "access ended" has not been told yet

    view = {"type": "modal", "callback_id": "closeout", "private_metadata": session.id}
    values = {
        "changes": text_input("rotated the signing keys", "changes_input"),
        "followups": text_input("", "followups_input"),
    }
    assert bot.send.submit(view, values, BOB).status == 200
    eventually(lambda: len(_pending(bot)) == 2, what="the closeout notice queued behind")
    assert bot.slack.calls_to("chat.postMessage") == []

    clock.travel(timedelta(minutes=2))
    assert len(resend_pending_notices(bot.ctx).sent) == 2
    thread = _in_thread(bot.slack, card_ts)
    ended = next(i for i, text in enumerate(thread) if "ended" in text.lower())
    closeout = next(i for i, text in enumerate(thread) if "rotated the signing keys" in text)
    assert ended < closeout, thread
    assert _pending(bot) == []


def test_a_card_posted_at_start_takes_its_kept_notice_along_so_it_is_never_posted_twice(
    sqlite_bot: BotHarness,
) -> None:
    from app.jobs.expire import announce_unposted_requests

    bot = sqlite_bot
    bot.slack.fail("chat.postMessage", "channel_not_found", times=2)  # the card and the DM
    assert bot.send.command("orders-api read 15m PAY-46 check", BOB).status == 200
    request_id = eventually(lambda: _pending(bot) and bot.latest_request_id(), what="kept")
    assert [row.notice for row in _pending(bot)] == ["request_created"]

    assert announce_unposted_requests(bot.ctx) == [request_id]  # as at the next start
    assert bot.request(request_id).card_ts is not None
    assert _pending(bot) == []
    clock.travel(timedelta(hours=1))
    assert resend_pending_notices(bot.ctx).sent == []
    assert len(_card_posts(bot.slack)) == 2  # the refused one and the one posted at start
    assert bot.send.click("approve_request", request_id, LEAD1).status == 200
    bot.slack.wait_for("chat.update", lambda a: a["ts"] == bot.request(request_id).card_ts)


def test_a_notice_is_given_up_after_the_last_attempt_logged_and_kept_as_failed(
    sqlite_bot: BotHarness,
) -> None:
    bot = sqlite_bot
    bot.ctx.settings.notice_max_attempts = 3
    session = _granted(bot, "orders-api read 15m PAY-42 look at logs")
    bot.slack.clear()
    for method in SLACK_WRITES:  # a refusal that no retry will change
        bot.slack.fail(method, "channel_not_found", times=1000)
    clock.travel(timedelta(minutes=15, seconds=1))
    bot.sweep()
    bot.wait_session(session.request_id, SessionState.ended)

    captured = structlog.testing.LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, captured])
    try:
        clock.travel(timedelta(hours=1))
        assert resend_pending_notices(bot.ctx).failed  # attempt 2
        clock.travel(timedelta(hours=1))
        given_up = resend_pending_notices(bot.ctx).given_up  # attempt 3, the last
    finally:
        structlog.configure(**previous)

    [row] = _pending(bot)
    assert given_up == [row.id]
    assert row.attempts == 3 and row.failed_at is not None and row.next_attempt_at is None
    [error] = [e for e in captured.entries if e["log_level"] == "error"]
    assert error["event"] == "slack_notice_given_up"
    assert error["notice"] == "session_ended" and error["session_id"] == session.id
    assert error["error"] == "channel_not_found"
    bot.slack.clear()
    clock.travel(timedelta(hours=2))
    assert resend_pending_notices(bot.ctx).sent == []  # given up means not tried again
    assert bot.slack.calls_to("chat.update") == []


def test_stopping_keeps_the_notices_still_queued_for_the_next_start(
    sqlite_bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = sqlite_bot
    sessions = [_granted(bot, f"orders-api read 15m PAY-4{n} look at logs") for n in (3, 4, 5)]
    monkeypatch.setattr(outbox_module, "STOP_DRAIN_SECONDS", 0.5)
    outbox = bot.ctx.notify
    assert isinstance(outbox, Outbox)
    outbox.start(lanes=1)  # as the serving process does: callers never wait for Slack
    bot.slack.clear()
    for method in SLACK_WRITES:  # each try sleeps out Retry-After twice: 3 s or more
        bot.slack.fail(method, "ratelimited", times=1000, status=429)

    for session in sessions:
        bot.ctx.notify.closeout_reminder(session)
    # the callers did not wait for Slack: the third reminder is not even tried (below)
    bot.slack.wait_for("chat.postMessage")  # the first reminder is being tried
    outbox.stop()

    kept = {row.session_id: row for row in _pending(bot)}
    assert set(kept) == {s.id for s in sessions}, "no notice was lost"
    assert kept[sessions[0].id].last_error == "ratelimited (HTTP 429)"
    assert kept[sessions[2].id].last_error == "not sent before the bot stopped"
    bot.slack.clear()
    clock.travel(timedelta(minutes=2))
    assert len(resend_pending_notices(bot.ctx).sent) == 3
    for session in sessions:
        bot.slack.wait_for(
            "chat.postMessage", lambda a, s=session: a["channel"] == BOB and says(a, s.id)
        )


# --- the real server: notice lanes, timers, SIGTERM ---------------------------------------


@functools.cache
def _engine(url: str) -> Engine:
    return create_engine(normalize_url(url))


def query(env: dict[str, str], sql: str, *args: object) -> list[tuple]:
    """Read or write the bot's database (SQLite or PostgreSQL) behind its back; `?` marks
    each argument."""
    numbers = itertools.count()
    statement = text(re.sub(r"\?", lambda _: f":p{next(numbers)}", sql))
    with _engine(env["DATABASE_URL"]).begin() as conn:
        result = conn.execute(statement, {f"p{n}": arg for n, arg in enumerate(args)})
        return [tuple(row) for row in result] if result.returns_rows else []


def set_expiry(env: dict[str, str], session_id: str, when: datetime) -> None:
    sqlite = env["DATABASE_URL"].startswith("sqlite")
    # SQLite keeps times as text in the bot's own format; PostgreSQL takes the aware time.
    value = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when
    query(env, "UPDATE access_sessions SET expires_at=? WHERE id=?", value, session_id)


def grant(server: ServeProcess, env: dict[str, str], text: str, user: str) -> str:
    """Ask, approve and wait for the grant over the real endpoint; the session id."""
    answer = server.sender.command(text, user)
    assert answer.status == 200 and "on its way" in answer.text, answer.text
    request_id = answer.text.split("`")[1]
    card = "SELECT card_ts FROM access_requests WHERE id=?"
    eventually(lambda: query(env, card, request_id)[0][0], what="card posted")
    assert server.sender.click("approve_request", request_id, LEAD1).status == 200
    state = "SELECT id, state FROM access_sessions WHERE request_id=?"
    rows = eventually(
        lambda: [r for r in query(env, state, request_id) if r[1] == "active"],
        timeout=10,
        what="session active",
    )
    return rows[0][0]


def session_state(env: dict[str, str], session_id: str) -> str:
    return query(env, "SELECT state FROM access_sessions WHERE id=?", session_id)[0][0]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Servers a test starts; every one is stopped afterwards."""
    started: list[ServeProcess] = []
    yield started
    for server in started:
        server.stop()


class SlowClient:
    """A signed `/prod-access help` sent in two halves: between them, the request is in
    flight and gunicorn keeps the worker serving (even after SIGTERM) until it is answered."""

    def __init__(self, server: ServeProcess) -> None:
        body = server.sender.command_body("help", BOB)
        timestamp = str(int(time.time()))
        head = (
            "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Slack-Request-Timestamp: {timestamp}\r\n"
            f"X-Slack-Signature: {sign(SIGNING_SECRET, timestamp, body)}\r\n\r\n"
        ).encode()
        self.rest = body[10:]
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.sock.sendall(head + body[:10])

    def finish(self) -> str:
        """Send the rest; the answer's status line."""
        self.sock.sendall(self.rest)
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        self.sock.close()
        return answer.split(b"\r\n", 1)[0].decode()


def _arrivals(webhook: WebhookReceiver, session_id: str, action: str) -> int:
    return sum(
        1
        for r in webhook.requests
        if r.body.get("action") == action and r.body.get("session_id") == session_id
    )


def test_slow_slack_never_delays_a_revoke_and_kept_notices_go_out_when_it_recovers(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    serve: list[ServeProcess],
) -> None:
    env = serve_env(
        tmp_path,
        slack,
        webhook,
        NOTICE_RESEND_INTERVAL_SECONDS="1",
        NOTICE_RETRY_BASE_SECONDS="1",
        NOTICE_RETRY_MAX_SECONDS="2",
    )
    server = ServeProcess(tmp_path, env)
    serve.append(server)
    server.start()
    first = grant(server, env, "orders-api write 1h PAY-50 restart worker", BOB)
    second = grant(server, env, "orders-api read 30m PAY-51 read logs", ALICE)
    # Slack hangs: card updates and messages get no answer at all until released (the
    # client would wait 30 s for one), and then only rate limits (Retry-After: 1 s, twice).
    for method in SLACK_WRITES:
        slack.fail(method, "ratelimited", times=10_000, status=429)
    slack.hold(*SLACK_WRITES)

    set_expiry(env, first, datetime.now(UTC))
    webhook.wait_for(1, action="revoke", timeout=10)
    eventually(lambda: session_state(env, first) == "ended", what="first session ended")
    eventually(slack.held, what="the first 'access ended' notice waiting for Slack")
    # The next expiry must not wait for that notice: its revoke comes while Slack still has
    # not answered anything (a sweep that waited would wait for the held call).
    set_expiry(env, second, datetime.now(UTC))
    eventually(lambda: _arrivals(webhook, second, "revoke"), timeout=15, what="second revoke")
    eventually(lambda: session_state(env, second) == "ended", what="second session ended")
    assert slack.held(), "Slack answered before the second revoke; the test proves nothing"
    slack.release()

    kept = "SELECT notice, session_id FROM pending_notices WHERE failed_at IS NULL"
    eventually(
        lambda: {("session_ended", first), ("session_ended", second)} <= set(query(env, kept)),
        timeout=20,
        what="both 'access ended' notices kept",
    )
    slack.clear()  # Slack is back
    for user, session_id in ((BOB, first), (ALICE, second)):
        slack.wait_for(
            "chat.postMessage",
            lambda a, u=user, s=session_id: a.get("channel") == u and says(a, s),
            timeout=15,
        )
    eventually(lambda: query(env, kept) == [], timeout=10, what="outbox empty")


def test_sigterm_finishes_the_revoke_in_flight_starts_nothing_new_and_exits_0(
    tmp_path: Path,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    serve: list[ServeProcess],
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    server = ServeProcess(tmp_path, env)
    serve.append(server)
    server.start()
    in_flight = grant(server, env, "orders-api write 1h PAY-60 hotfix", BOB)
    later = grant(server, env, "orders-api read 30m PAY-61 read logs", ALICE)

    webhook.delay(2.0)  # the next provider call (the revoke) takes 2 s
    set_expiry(env, in_flight, datetime.now(UTC))
    webhook.wait_for(1, action="revoke", timeout=10)
    # A request still arriving keeps the worker serving for a while after SIGTERM (gunicorn
    # answers the requests in flight): the timers must not run meanwhile.
    slow_client = SlowClient(server)
    time.sleep(0.2)
    terminated = time.monotonic()
    server.terminate()
    set_expiry(env, later, datetime.now(UTC) - timedelta(seconds=1))  # due after SIGTERM
    time.sleep(3.5)  # several sweep intervals, and the revoke in flight has finished
    assert slow_client.finish() == "HTTP/1.1 200 OK"
    status = server.wait(timeout=35)
    took = time.monotonic() - terminated

    assert status == 0, server.stderr()
    assert took < 30, f"took {took:.1f}s, beyond gunicorn's 30 s grace period"
    assert session_state(env, in_flight) == "ended"
    assert _arrivals(webhook, in_flight, "check") == 1  # the revoke was verified, then recorded
    events = query(env, "SELECT event FROM audit_events WHERE session_id=? ORDER BY seq", in_flight)
    assert [e for (e,) in events][-3:] == ["expired", "revoked", "closeout_prompted"]
    assert session_state(env, later) == "active"
    assert _arrivals(webhook, later, "revoke") == 0
    assert '"level": "error"' not in server.stderr(), server.stderr()
