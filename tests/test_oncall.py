"""The PagerDuty on-call client (app/oncall.py) against a fake PagerDuty on localhost
(tests/fakes/pagerduty_api.py): who is on call, pagination, the cache, and failures that say
why in one line without the token."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest

from app import oncall
from app.config import SettingsError, load_settings
from app.logging import mask
from app.oncall import OnCallUnavailable, PagerDuty, pagerduty_from_settings
from tests.fakes.local_server import LocalServer, Reply
from tests.fakes.pagerduty_api import FakePagerDuty

TOKEN = "pd-test-token-u+1x9Zq3"
SCHEDULE = "PSCHED1"


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(TOKEN) as fake:
        yield fake


def client(fake: FakePagerDuty, token: str = TOKEN, **options: float) -> PagerDuty:
    return PagerDuty(token, base_url=fake.url, **options)


def unavailable(call: object) -> str:
    """The message of the OnCallUnavailable that `call()` raises."""
    with pytest.raises(OnCallUnavailable) as raised:
        call()  # type: ignore[operator]
    return str(raised.value)


def test_person_on_call_for_the_schedule_is_on_call(pagerduty: FakePagerDuty) -> None:
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com"])
    assert client(pagerduty).is_on_call(SCHEDULE, "bob@example.com") is True
    (call,) = pagerduty.calls
    assert call.method == "GET" and call.path == "/oncalls"
    assert call.headers["authorization"] == f"Token token={TOKEN}"
    assert call.headers["accept"] == "application/vnd.pagerduty+json;version=2"
    query = parse_qs(call.query)
    assert query["schedule_ids[]"] == [SCHEDULE]
    assert query["include[]"] == ["users"]
    # "now" is PagerDuty's default for since/until; earliest would answer the next shifts
    assert not {"since", "until", "earliest"} & set(query)


def test_person_not_on_call_is_not(pagerduty: FakePagerDuty) -> None:
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com"])
    pagerduty.set_on_call("POTHER", ["alice@example.com"])
    pd = client(pagerduty)
    assert pd.is_on_call(SCHEDULE, "alice@example.com") is False
    assert pd.is_on_call("PEMPTY", "bob@example.com") is False


def test_email_matches_whatever_the_case(pagerduty: FakePagerDuty) -> None:
    pagerduty.set_on_call(SCHEDULE, ["Bob.Smith@Example.COM"])
    pd = client(pagerduty)
    assert pd.on_call_emails(SCHEDULE) == {"bob.smith@example.com"}
    assert pd.is_on_call(SCHEDULE, "bob.smith@example.com") is True
    assert pd.is_on_call(SCHEDULE, " BOB.SMITH@example.com") is True


def test_every_page_is_read(pagerduty: FakePagerDuty) -> None:
    people = [f"sre{n}@example.com" for n in range(5)]
    pagerduty.set_on_call(SCHEDULE, people)  # the fake serves 2 per page
    pd = client(pagerduty)
    assert pd.on_call_emails(SCHEDULE) == set(people)
    assert pd.is_on_call(SCHEDULE, "sre4@example.com") is True  # on the last page
    offsets = [parse_qs(call.query)["offset"] for call in pagerduty.calls]
    assert offsets == [["0"], ["2"], ["4"]]


def test_only_the_schedule_asked_about_counts_even_if_the_server_ignores_the_filter(
    pagerduty: FakePagerDuty,
) -> None:
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com"])
    pagerduty.set_on_call("POTHER", ["mallory@example.com"])
    pagerduty.ignore_schedule_filter = True
    pd = client(pagerduty)
    assert pd.on_call_emails(SCHEDULE) == {"bob@example.com"}
    assert pd.is_on_call(SCHEDULE, "mallory@example.com") is False


def test_refused_token_says_so_without_the_token(pagerduty: FakePagerDuty) -> None:
    wrong = "pd-wrong-token-7Hq2"
    message = unavailable(lambda: client(pagerduty, token=wrong).is_on_call(SCHEDULE, "b@x.io"))
    assert message == "PagerDuty refused the token (HTTP 401): check PAGERDUTY_TOKEN"
    assert wrong not in message


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_rate_limits_make_pagerduty_unavailable(
    pagerduty: FakePagerDuty, status: int
) -> None:
    pagerduty.script.fail(status)
    message = unavailable(lambda: client(pagerduty).is_on_call(SCHEDULE, "bob@example.com"))
    assert message.startswith(f"PagerDuty answered HTTP {status}: ")
    assert "\n" not in message and TOKEN not in message


def test_a_client_error_names_the_status(pagerduty: FakePagerDuty) -> None:
    pagerduty.script.fail(400)
    message = unavailable(lambda: client(pagerduty).on_call_emails(SCHEDULE))
    assert message.startswith("PagerDuty answered HTTP 400: ")


def test_a_hanging_pagerduty_times_out(pagerduty: FakePagerDuty) -> None:
    pagerduty.script.hang(2.0)  # then it answers 504, which a client that waited would name
    message = unavailable(lambda: client(pagerduty, timeout=0.3).on_call_emails(SCHEDULE))
    assert message == "PagerDuty timed out after 0.3s"


def test_unreachable_pagerduty_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pd = PagerDuty(TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=1)
    message = unavailable(lambda: pd.on_call_emails(SCHEDULE))
    assert message.startswith(f"PagerDuty unreachable at http://127.0.0.1:{port}/oncalls: ")
    assert TOKEN not in message


def test_an_answer_that_is_not_an_on_call_list_is_unavailable() -> None:
    server = LocalServer(lambda request: Reply(200, ["not", "the", "shape"]))
    server.start()
    try:
        pd = PagerDuty(TOKEN, base_url=f"http://127.0.0.1:{server.port}")
        message = unavailable(lambda: pd.on_call_emails(SCHEDULE))
    finally:
        server.stop()
    assert message.startswith("PagerDuty answered something that is not a list of on-calls")


def test_no_token_is_unavailable_without_calling(pagerduty: FakePagerDuty) -> None:
    message = unavailable(lambda: client(pagerduty, token="").is_on_call(SCHEDULE, "b@x.io"))
    assert message == "PAGERDUTY_TOKEN is not set"
    assert pagerduty.calls == []


def test_answers_are_cached_per_schedule_for_cache_seconds(
    pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the cache's clock is moved by the test: a slow machine must not expire it early
    now = [1000.0]
    monkeypatch.setattr(oncall, "time", SimpleNamespace(monotonic=lambda: now[0]))
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com"])
    pd = client(pagerduty, cache_seconds=0.3)
    assert pd.is_on_call(SCHEDULE, "bob@example.com") is True
    pagerduty.set_on_call(SCHEDULE, ["alice@example.com"])  # the shift changes
    assert pd.is_on_call(SCHEDULE, "bob@example.com") is True  # from the cache
    assert pagerduty.oncalls_calls() == 1
    assert pd.on_call_emails("POTHER") == set()  # another schedule is asked separately
    assert pagerduty.oncalls_calls() == 2
    now[0] += 0.29
    assert pd.is_on_call(SCHEDULE, "bob@example.com") is True  # still cached
    assert pagerduty.oncalls_calls() == 2
    now[0] += 0.02
    assert pd.is_on_call(SCHEDULE, "bob@example.com") is False
    assert pd.is_on_call(SCHEDULE, "alice@example.com") is True
    assert pagerduty.oncalls_calls() == 3


def test_failures_are_not_cached(pagerduty: FakePagerDuty) -> None:
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com"])
    pagerduty.script.fail(502)
    pd = client(pagerduty)
    unavailable(lambda: pd.on_call_emails(SCHEDULE))
    assert pd.is_on_call(SCHEDULE, "bob@example.com") is True


def test_concurrent_questions_agree(pagerduty: FakePagerDuty) -> None:
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com", "alice@example.com", "lead1@example.com"])
    pd = client(pagerduty)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: pd.on_call_emails(SCHEDULE), range(32)))
    assert all(a == {"bob@example.com", "alice@example.com", "lead1@example.com"} for a in answers)


def test_probe_proves_the_token_with_one_small_call(pagerduty: FakePagerDuty) -> None:
    client(pagerduty).probe()
    (call,) = pagerduty.calls
    assert call.path == "/oncalls" and parse_qs(call.query)["limit"] == ["1"]
    message = unavailable(client(pagerduty, token="pd-wrong-token-7Hq2").probe)
    assert "check PAGERDUTY_TOKEN" in message


def test_client_comes_from_settings_and_its_token_is_masked_in_logs(
    pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGERDUTY_TOKEN", raising=False)
    assert pagerduty_from_settings(load_settings(_env_file=None)) is None
    assert pagerduty_from_settings(load_settings(_env_file=None, pagerduty_token="  ")) is None
    settings = load_settings(
        _env_file=None, pagerduty_token=TOKEN, pagerduty_api_url=pagerduty.url + "/"
    )
    pd = pagerduty_from_settings(settings)
    assert pd is not None and pd.base_url == pagerduty.url
    pagerduty.set_on_call(SCHEDULE, ["bob@example.com"])
    assert pd.is_on_call(SCHEDULE, "bob@example.com") is True
    assert mask(f"calling with {TOKEN}") == "calling with [secret]"


def test_a_bad_pagerduty_url_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_API_URL", "api.pagerduty.com")
    with pytest.raises(SettingsError, match=r"^PAGERDUTY_API_URL is invalid: must be an http"):
        load_settings(_env_file=None)
