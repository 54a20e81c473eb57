"""Step-up approvals end to end over real HTTP: signed Slack requests in, the local OpenID
provider (tests/fakes/oidc_provider.py) logging people in, a browser following redirects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.db import transaction
from app.models import RequestState, SessionState
from app.review import build_review, render_markdown
from tests.conftest import ALICE, run_cli_here
from tests.fakes.serve import serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.step_up import (
    BOB,
    LEAD1,
    LEAD2,
    StepUpBot,
    link_in,
    step_up_bot,
    step_up_env,
    stepped,
    write_step_up_policy,
)
from tests.fakes.webhook_receiver import WebhookReceiver

__all__ = ["stepped"]
HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgres"])
def both(
    request: pytest.FixtureRequest, tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> Iterator[StepUpBot]:
    database_url = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    yield from step_up_bot(tmp_path, slack, webhook, database_url)


def test_a_step_up_approval_counts_only_after_the_login_then_grants(
    both: StepUpBot, webhook: WebhookReceiver, slack: FakeSlack
) -> None:
    bot, idp = both, both.idp
    request_id = bot.bot.quick_request("orders-api write 30m PAY-1 fix the index", BOB)
    card = slack.wait_for("chat.postMessage", lambda a: "approve_request" in str(a.get("blocks")))
    assert "Needs step-up" in str(card[-1]["blocks"])

    link = bot.click_approve(request_id, LEAD1)
    assert link.startswith(f"{bot.public_url}/step-up/")
    # the click alone changed nothing
    assert bot.approvals(request_id) == []
    assert bot.bot.request(request_id).state == RequestState.pending

    page = bot.open(link)
    assert page.status_code == 200, page.text
    assert "Approval counted (1 of 2): bob@example.com, write on orders-api for 30m" in page.text
    assert "you can close this tab" in page.text
    asked = idp.authorize_queries[-1]
    assert asked["prompt"] == "login" and asked["max_age"] == "300"
    assert asked["scope"] == "openid email" and asked["code_challenge_method"] == "S256"
    assert asked["state"] and asked["nonce"] and asked["code_challenge"]
    assert asked["redirect_uri"] == f"{bot.public_url}/step-up/callback"
    assert bot.approvals(request_id) == [LEAD1]

    idp.log_in_as(sub="sub-lead2", email=None)  # lead2 is known by oidc_subject
    page = bot.open(bot.click_approve(request_id, LEAD2))
    assert "Approved: bob@example.com, write on orders-api for 30m" in page.text, page.text
    bot.bot.wait_session(request_id, SessionState.active)
    assert webhook.wait_for(1, action="grant")[0].body["grant"] == "orders-admin"

    recorded = bot.events("approval_recorded")[-1].detail["step_up"]
    approved = bot.events("approved")[-1].detail["step_up"]
    assert recorded["issuer"] == idp.issuer and recorded["sub"] == "sub-lead1"
    assert approved["sub"] == "sub-lead2" and approved["amr"] == ["pwd", "mfa"]
    assert approved["auth_time"].startswith(str(clock.now().year))
    assert [e.actor for e in bot.events("step_up_started")] == [LEAD1, LEAD2]


def test_a_plain_role_is_approved_by_a_click_beside_a_stepped_up_role(
    stepped: StepUpBot, webhook: WebhookReceiver
) -> None:
    plain = stepped.bot.quick_request("orders-api read 15m PAY-2 look", BOB)
    risky = stepped.bot.quick_request("orders-api write 15m PAY-3 fix", BOB)
    assert stepped.bot.send.click("approve_request", plain, LEAD1).status == 200
    stepped.bot.wait_session(plain, SessionState.active)
    assert stepped.events("step_up_started") == []

    stepped.idp.log_in_as(sub="sub-alice", email="alice@example.com")
    stepped.open(stepped.click_approve(risky, ALICE))
    stepped.idp.log_in_as(sub="sub-lead2", email=None)
    page = stepped.open(stepped.click_approve(risky, LEAD2))
    assert "Approved:" in page.text, page.text
    stepped.bot.wait_session(risky, SessionState.active)

    with transaction(stepped.bot.ctx.db) as db:
        now = clock.now()
        review = build_review(db, stepped.bot.ctx.policy, now - timedelta(days=1), now + HOUR)
    assert review.stepped_up == {ALICE: 1, LEAD2: 1}
    markdown = render_markdown(review)
    assert "| U0ALICE | 1 | 1 |" in markdown and "| U0LEAD1 | 1 | 0 |" in markdown


def test_a_new_signing_key_is_fetched_once_when_the_provider_rotates(stepped: StepUpBot) -> None:
    first = stepped.bot.quick_request("orders-api write 15m PAY-4 fix", BOB)
    stepped.open(stepped.click_approve(first, LEAD1))
    assert stepped.approvals(first) == [LEAD1]
    fetched = stepped.idp.jwks_fetches
    stepped.idp.rotate()
    second = stepped.bot.quick_request("orders-api write 15m PAY-5 fix", BOB)
    page = stepped.open(stepped.click_approve(second, LEAD1))
    assert "Approval counted (1 of 2)" in page.text, page.text
    assert stepped.idp.jwks_fetches == fetched + 1
    assert stepped.failures() == []


def test_break_glass_with_step_up_is_granted_only_after_the_requesters_login(
    stepped: StepUpBot, webhook: WebhookReceiver, slack: FakeSlack
) -> None:
    answer = stepped.bot.send.command("--breakglass orders-api write 1h INC-7 payments down", BOB)
    assert answer.status == 200
    said = answer.json()
    assert said["text"].startswith("Confirm breaking the glass of R-")
    request_id = said["text"].split(" of ")[1].split()[0]
    assert stepped.bot.session_for(request_id) is None
    assert webhook.actions() == []

    stepped.idp.log_in_as(sub="sub-bob", email="bob@example.com")
    page = stepped.open(link_in(said["blocks"]))
    assert "Break-glass granted: bob@example.com, write on orders-api for 1h" in page.text
    stepped.bot.wait_session(request_id, SessionState.active)
    event = stepped.events("breakglass_granted")[-1]
    assert event.actor == BOB and event.detail["step_up"]["sub"] == "sub-bob"
    slack.wait_for("chat.postMessage", lambda a: "BREAK-GLASS" in str(a.get("blocks")))


def test_serve_refuses_to_start_when_step_up_has_no_oidc_settings(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    write_step_up_policy(Path(env["POLICY_FILE"]), webhook.url)
    env = {k: v for k, v in env.items() if not k.startswith(("OIDC_", "PUBLIC_URL"))}
    env["OIDC_CLIENT_ID"] = CLIENT_ID_ONLY
    done = run_cli_here(tmp_path, env, "serve", "--http")
    assert done.returncode == 2, done.stderr
    assert (
        "prod-access: step_up is used in the policy, but PUBLIC_URL, OIDC_ISSUER, "
        "OIDC_CLIENT_SECRET not set (see .env.example)" in done.stderr
    )
    assert not (tmp_path / "serve.db").exists()


CLIENT_ID_ONLY = "only-the-client-id"


def test_check_fetches_the_discovery_document_and_the_jwks(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    from tests.fakes.oidc_provider import FakeOidcProvider

    env = serve_env(tmp_path, slack, webhook)
    write_step_up_policy(Path(env["POLICY_FILE"]), webhook.url)
    with FakeOidcProvider() as idp:
        env.update(step_up_env(idp.issuer, "http://127.0.0.1:1"))
        done = run_cli_here(tmp_path, env, "check")
        line = next(x for x in done.stdout.splitlines() if x.startswith("step-up (OIDC)"))
        assert " OK " in line and "discovery and JWKS (1 key(s)) fetched" in line, done.stdout
        assert idp.jwks_fetches == 1
    done = run_cli_here(tmp_path, env, "check")
    line = next(x for x in done.stdout.splitlines() if x.startswith("step-up (OIDC)"))
    assert " PROBLEM " in line and "identity provider unreachable" in line, done.stdout
    assert done.returncode == 1
