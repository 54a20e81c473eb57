"""GET /metrics over real HTTP: with METRICS_TOKEN set only a scraper sending it as a bearer
token gets the figures (the token is masked in logs like every secret); without it /metrics is
open. The counts by state come from the database at most every COUNTS_MAX_AGE (15 s): scrapes in
between, however many and from however many threads, scan no table.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event

from app import clock, metrics
from app.config import load_settings
from app.logging import mask
from tests.conftest import BOB, BotHarness, make_settings, write_policy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

TOKEN = "metrics-7c1e9a3f5b2d48e6a0f1"


@dataclass
class Scrape:
    status: int
    headers: Message
    text: str


def scrape(bot: BotHarness, authorization: str | None = None) -> Scrape:
    url = bot.url.replace("/slack/events", "/metrics")
    headers = {"Authorization": authorization} if authorization is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return Scrape(r.status, r.headers, r.read().decode())
    except urllib.error.HTTPError as exc:
        return Scrape(exc.code, exc.headers, exc.read().decode())


@pytest.fixture
def guarded_bot(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> Iterator[BotHarness]:
    """The bot with METRICS_TOKEN set."""
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    settings = make_settings(tmp_path, slack, policy)
    harness = BotHarness(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}), slack)
    yield harness
    harness.stop()


def test_with_metrics_token_set_only_its_bearer_gets_the_metrics(guarded_bot: BotHarness) -> None:
    refused = [None, "", "Bearer", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"]
    refused += [TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}"]
    for authorization in refused:
        answer = scrape(guarded_bot, authorization)
        assert answer.status == 401, authorization
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "prod_access" not in answer.text
    for authorization in (f"Bearer {TOKEN}", f"bearer {TOKEN}"):  # the scheme is case-blind
        answer = scrape(guarded_bot, authorization)
        assert answer.status == 200, authorization
        assert 'prod_access_requests{state="pending"} 0.0' in answer.text
    assert mask(f"GET /metrics Authorization: Bearer {TOKEN}") == (
        "GET /metrics Authorization: Bearer [secret]"
    )


def test_a_blank_metrics_token_leaves_metrics_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN", "  ")
    assert load_settings(_env_file=None).metrics_token is None
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    token = load_settings(_env_file=None).metrics_token
    assert token is not None and token.get_secret_value() == TOKEN


def _pending(answer: Scrape) -> str:
    assert answer.status == 200, answer
    return next(
        line.split()[-1]
        for line in answer.text.splitlines()
        if line.startswith('prod_access_requests{state="pending"}')
    )


def test_counts_by_state_are_read_from_the_database_at_most_every_15_seconds(
    bot: BotHarness,
) -> None:
    """Without METRICS_TOKEN, /metrics is open."""
    scans: list[str] = []

    def count_scans(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "GROUP BY" in statement:
            scans.append(statement)

    engine = bot.ctx.db.kw["bind"]
    event.listen(engine, "before_cursor_execute", count_scans)
    try:
        assert _pending(scrape(bot)) == "0.0"
        bot.quick_request("orders-api read 15m PAY-30 look at the backlog", BOB)
        time.sleep(1)
        scans.clear()
        assert _pending(scrape(bot)) == "0.0"  # the figures of a second ago
        assert scans == []

        clock.travel(metrics.COUNTS_MAX_AGE)
        answers: list[Scrape] = []
        scrapers = [threading.Thread(target=lambda: answers.append(scrape(bot))) for _ in range(8)]
        for scraper in scrapers:
            scraper.start()
        for scraper in scrapers:
            scraper.join()
        assert [_pending(answer) for answer in answers] == ["1.0"] * 8
        assert len(scans) == 2, scans  # requests and sessions, read once for all eight
    finally:
        event.remove(engine, "before_cursor_execute", count_scans)
