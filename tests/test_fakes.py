"""The test fakes behave like the services they stand in for, so other tests can trust them."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.fakes.postgres import postgres_or_skip
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*db-prod* for 1h"}}]
SECRET = "webhook-test-secret"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(users={"U1": {"email": "ada@example.com", "name": "ada"}}) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=slack.url)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as fake:
        yield fake


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 5.0) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", parts.path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def signed_headers(secret: str, timestamp: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Prod-Access-Timestamp": timestamp,
        "X-Prod-Access-Signature": "sha256=" + digest.hexdigest(),
    }


def test_post_message_to_a_user_id_lands_in_their_dm_with_blocks_recorded(
    slack: FakeSlack, client: WebClient
) -> None:
    first = client.chat_postMessage(channel="U1", text="hello", blocks=BLOCKS)
    second = client.chat_postMessage(channel="C42", text="again")

    assert first["channel"] == "DU1"
    assert first["message"]["blocks"] == BLOCKS
    assert float(first["ts"]) < float(second["ts"])
    [call, _] = slack.wait_for("chat.postMessage", count=2)
    assert call["blocks"] == BLOCKS
    assert slack.calls[0].headers["content-type"].startswith("application/json")


def test_form_encoded_calls_are_parsed_and_json_fields_decoded(
    slack: FakeSlack, client: WebClient
) -> None:
    client.api_call(
        "chat.postEphemeral",
        data={"channel": "C42", "user": "U1", "text": "only you", "blocks": json.dumps(BLOCKS)},
    )
    user = client.users_info(user="U1")["user"]

    [ephemeral] = slack.calls_to("chat.postEphemeral")
    assert ephemeral["blocks"] == BLOCKS
    assert slack.calls[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert user["profile"]["email"] == "ada@example.com"
    assert user["tz"] == "Europe/Berlin"
    with pytest.raises(SlackApiError) as unknown:
        client.users_info(user="U404")
    assert unknown.value.response["error"] == "user_not_found"


def test_views_get_ids_and_views_update_keeps_the_view_id(client: WebClient) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Request"}, "blocks": []}

    opened = client.views_open(trigger_id="123.456", view=view)["view"]
    updated = client.views_update(view_id=opened["id"], view=view)["view"]

    assert opened["id"].startswith("V")
    assert opened["title"]["text"] == "Request"
    assert updated["id"] == opened["id"]
    assert updated["hash"] != opened["hash"]


def test_call_without_token_is_not_authed_but_still_recorded(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as refused:
        WebClient(base_url=slack.url).chat_postMessage(channel="C42", text="hi")

    assert refused.value.response["error"] == "not_authed"
    assert slack.calls_to("chat.postMessage") == [{"channel": "C42", "text": "hi"}]


def test_fail_answers_errors_for_the_next_calls_only(slack: FakeSlack, client: WebClient) -> None:
    slack.fail("chat.update")
    slack.fail("chat.postMessage", "ratelimited", status=429)

    with pytest.raises(SlackApiError) as failed:
        client.chat_update(channel="C42", ts="1.2", text="x")
    assert failed.value.response["error"] == "internal_error"
    with pytest.raises(SlackApiError) as limited:
        client.chat_postMessage(channel="C42", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "1"
    assert client.chat_postMessage(channel="C42", text="x")["ok"]


def test_response_url_posts_are_recorded_with_their_key(slack: FakeSlack) -> None:
    WebhookClient(slack.response_url("card-7")).send(text="Approved", replace_original=True)

    [response] = slack.wait_for("response_url")
    assert response == {"text": "Approved", "replace_original": True, "_key": "card-7"}


def test_wait_for_times_out_with_the_calls_it_saw(slack: FakeSlack, client: WebClient) -> None:
    client.auth_test()

    with pytest.raises(AssertionError, match=r"(?s)chat\.postMessage.*got 0.*auth\.test"):
        slack.wait_for("chat.postMessage", timeout=0.2)


def test_webhook_receiver_accepts_a_valid_signature(receiver: WebhookReceiver) -> None:
    body = json.dumps({"action": "grant", "session_id": 7}).encode()

    status = post(receiver.url, body, signed_headers(SECRET, "1700000000", body))

    [received] = receiver.wait_for(action="grant")
    assert status == 200
    assert received.signature_valid
    assert received.body["session_id"] == 7
    assert received.raw == body
    assert receiver.actions() == ["grant"]


def test_webhook_receiver_flags_wrong_or_missing_signatures(receiver: WebhookReceiver) -> None:
    body = json.dumps({"action": "revoke"}).encode()
    tampered = json.dumps({"action": "revoke", "extra": 1}).encode()

    post(receiver.url, body, signed_headers("not-the-secret", "1700000000", body))
    post(receiver.url, tampered, signed_headers(SECRET, "1700000000", body))
    post(receiver.url, body, {"Content-Type": "application/json"})

    assert [r.signature_valid for r in receiver.wait_for(count=3)] == [False, False, False]


def test_webhook_receiver_scripts_statuses_and_delays(receiver: WebhookReceiver) -> None:
    body = json.dumps({"action": "grant"}).encode()
    headers = signed_headers(SECRET, "1700000000", body)
    receiver.respond_with(503)

    assert post(receiver.url, body, headers) == 503
    receiver.delay(0.5)
    with pytest.raises(TimeoutError):
        post(receiver.url, body, headers, timeout=0.1)
    assert post(receiver.url, body, headers) == 200
    assert receiver.actions() == ["grant", "grant", "grant"]


def test_postgres_server_runs_queries_and_creates_databases(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = postgres_or_skip(tmp_path_factory.mktemp("postgres"))
    try:
        with psycopg.connect(server.dsn) as connection:
            assert connection.execute("select 1").fetchone() == (1,)
        dsn = server.create_database("prod_access_test")
        with psycopg.connect(dsn) as connection:
            assert connection.execute("select current_database()").fetchone() == (
                "prod_access_test",
            )
    finally:
        server.stop()
