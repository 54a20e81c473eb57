"""Reloading the policy without a restart (issue 16): in-process (the SIGHUP path), refusals,
`prod-access policy reload` reaching two replicas on PostgreSQL, and the policy hash in every
audit event."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from structlog.testing import capture_logs

from app import audit, clock
from app.db import engine_of, make_engine, make_sessionmaker, reading, transaction, upgrade
from app.models import AuditEvent, SessionState
from app.policy_reload import SIGHUP, file_sha256, reload_in_background, reload_policy
from app.policy_reload_requests import PolicyReloadPoll
from app.review import build_review, render_markdown
from tests.conftest import (
    BOB,
    LEAD1,
    BotHarness,
    make_settings,
    run_cli_here,
    write_policy,
)
from tests.fakes.audit_trail import seed_events
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

DEPLOY = "      - {id: deploy, grant: orders-deployer, max_duration: 1h}\n"


def with_deploy_role(policy: Path) -> str:
    """The tests' policy with a third role on orders-api, `deploy`."""
    written = policy.read_text()
    policy.write_text(written.replace("max_duration: 2h}\n", "max_duration: 2h}\n" + DEPLOY, 1))
    assert "deploy" in policy.read_text()
    return file_sha256(policy)


def events(bot: BotHarness, name: str | None = None) -> list[AuditEvent]:
    with reading(bot.ctx.db) as db:
        return [e for e in audit.events(db) if name is None or e.event == name]


def test_after_sighup_a_new_role_is_requestable_and_the_change_is_audited(
    bot: BotHarness,
) -> None:
    policy = Path(bot.ctx.settings.policy_file)
    old = file_sha256(policy)
    refused = bot.send.command("orders-api deploy 30m PAY-1 ship the fix", BOB)
    assert "Unknown access 'deploy'" in refused.text
    new = with_deploy_role(policy)

    reload_in_background(bot.ctx, SIGHUP).join(timeout=10)

    request_id = bot.quick_request("orders-api deploy 30m PAY-1 ship the fix", BOB)
    assert bot.request(request_id).role_id == "deploy"
    (changed,) = events(bot, "policy_changed")
    assert changed.detail["old_sha256"] == old and changed.detail["new_sha256"] == new
    assert changed.detail["trigger"] == "SIGHUP"
    assert "orders-api deploy" in changed.detail["diff"]
    assert "role added" in changed.detail["diff"]
    assert changed.policy_sha256 == old  # recorded under the policy it replaced
    (requested,) = [e for e in events(bot, "requested") if e.request_id == request_id]
    assert requested.policy_sha256 == new


def test_a_bad_file_is_refused_whole_and_the_old_policy_still_answers(
    sqlite_bot: BotHarness, slack: FakeSlack
) -> None:
    bot = sqlite_bot
    policy = Path(bot.ctx.settings.policy_file)
    before = file_sha256(policy)
    with_deploy_role(policy)  # a good change, together with a bad one: none of it applies
    policy.write_text(policy.read_text().replace("max_duration: 30m", "max_duration: forever"))

    with capture_logs() as logs:
        outcome = reload_policy(bot.ctx, trigger=SIGHUP)

    assert outcome.result == "refused"
    assert "policy.yml:16: systems[0].roles[0].max_duration: invalid duration" in outcome.reason
    (line,) = [entry for entry in logs if entry["event"] == "policy_reload_refused"]
    assert "max_duration" in line["reason"] and line["policy_sha256"] == before
    said = slack.wait_for("chat.postMessage", lambda a: "was refused" in a.get("text", ""))
    assert said[-1]["channel"] == "C0APPROVALS"
    assert "policy in force stays" in said[-1]["text"] and "forever" in said[-1]["text"]
    (refusal,) = events(bot, "policy_reload_refused")
    assert refusal.detail["sha256"] == file_sha256(policy)
    assert not events(bot, "policy_changed")
    assert bot.ctx.policy_sha256 == before
    refused = bot.send.command("orders-api deploy 30m PAY-1 ship the fix", BOB)
    assert "Unknown access 'deploy'" in refused.text  # the old policy answers
    assert bot.granted("orders-api read 30m PAY-2 look at orders").state == SessionState.active

    assert reload_policy(bot.ctx, trigger=SIGHUP).result == "refused"  # the same file again
    assert len(events(bot, "policy_reload_refused")) == 1
    assert len([a for a in slack.calls_to("chat.postMessage") if "was refused" in a["text"]]) == 1


def test_a_policy_dropping_a_system_with_an_open_session_is_refused_naming_it(
    sqlite_bot: BotHarness,
) -> None:
    bot = sqlite_bot
    session = bot.granted("orders-api write 30m PAY-3 restart a worker")
    policy = Path(bot.ctx.settings.policy_file)
    policy.write_text(policy.read_text().replace("id: orders-api", "id: billing-api"))

    outcome = reload_policy(bot.ctx, trigger=SIGHUP)

    assert outcome.result == "refused"
    assert session.id in outcome.reason and "orders-api write" in outcome.reason
    assert "prod-access revoke" in outcome.reason
    assert bot.ctx.policy.system("orders-api") is not None
    assert "orders-api" in bot.ctx.providers  # the session can still be revoked
    assert bot.session_for(session.request_id).state == SessionState.active  # type: ignore[union-attr]


def test_work_in_flight_keeps_the_policy_it_started_with(sqlite_bot: BotHarness) -> None:
    ctx = sqlite_bot.ctx
    with ctx.pinned():
        with_deploy_role(Path(ctx.settings.policy_file))
        assert reload_policy(ctx, trigger=SIGHUP).result == "changed"
        system = ctx.policy.system("orders-api")
        assert system is not None and system.role("deploy") is None
    system = ctx.policy.system("orders-api")
    assert system is not None and system.role("deploy") is not None


def test_an_unchanged_provider_is_kept_and_a_changed_one_is_built_anew(
    sqlite_bot: BotHarness,
) -> None:
    ctx = sqlite_bot.ctx
    provider = ctx.providers["orders-api"]
    policy = Path(ctx.settings.policy_file)
    with_deploy_role(policy)
    assert reload_policy(ctx, trigger=SIGHUP).result == "changed"
    assert ctx.providers["orders-api"] is provider
    policy.write_text(policy.read_text().replace("timeout: 2", "timeout: 3"))
    assert reload_policy(ctx, trigger=SIGHUP).result == "changed"
    assert ctx.providers["orders-api"] is not provider


@pytest.fixture
def replicas(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, pg_database: str
) -> Iterator[tuple[BotHarness, BotHarness]]:
    """Two replicas on one PostgreSQL, each reading its own copy of the policy file."""
    bots = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        policy = write_policy(tmp_path / name / "policy.yml", webhook.url)
        bots.append(BotHarness(make_settings(tmp_path, slack, policy, pg_database), slack))
    yield bots[0], bots[1]
    for bot in bots:
        bot.stop()


def test_policy_reload_reaches_both_replicas_within_one_poll_and_is_recorded_once(
    replicas: tuple[BotHarness, BotHarness], tmp_path: Path, pg_database: str
) -> None:
    one, two = replicas
    polls = [PolicyReloadPoll(one.ctx), PolicyReloadPoll(two.ctx)]
    new = with_deploy_role(Path(one.ctx.settings.policy_file))
    with_deploy_role(Path(two.ctx.settings.policy_file))
    env = {**os.environ, "DATABASE_URL": pg_database, "POLICY_FILE": one.ctx.settings.policy_file}
    assert all(
        poll.poll_policy_reload(bot.ctx) is None for poll, bot in zip(polls, replicas, strict=True)
    )

    asked = run_cli_here(tmp_path, env, "policy", "reload")

    assert asked.returncode == 0, asked.stderr
    assert f"reload 1 requested: sha256 {new}" in asked.stdout
    outcomes = [poll.poll_policy_reload(bot.ctx) for poll, bot in zip(polls, replicas, strict=True)]
    assert [o.result for o in outcomes if o] == ["changed", "changed"]
    assert one.ctx.policy_sha256 == two.ctx.policy_sha256 == new
    (changed,) = events(one, "policy_changed")
    assert changed.detail["trigger"] == "prod-access policy reload"
    assert changed.actor != audit.SYSTEM_ACTOR  # who asked
    assert all(
        poll.poll_policy_reload(bot.ctx) is None for poll, bot in zip(polls, replicas, strict=True)
    )
    request_id = two.quick_request("orders-api deploy 30m PAY-4 ship it", BOB)
    assert two.request(request_id).role_id == "deploy"


def test_a_replica_whose_file_differs_refuses_the_request_until_its_file_catches_up(
    replicas: tuple[BotHarness, BotHarness], tmp_path: Path, pg_database: str
) -> None:
    one, two = replicas
    polls = [PolicyReloadPoll(one.ctx), PolicyReloadPoll(two.ctx)]
    new = with_deploy_role(Path(one.ctx.settings.policy_file))  # two's copy not updated yet
    env = {**os.environ, "DATABASE_URL": pg_database, "POLICY_FILE": one.ctx.settings.policy_file}
    assert run_cli_here(tmp_path, env, "policy", "reload").returncode == 0

    with capture_logs() as logs:
        first, second = (
            poll.poll_policy_reload(bot.ctx) for poll, bot in zip(polls, replicas, strict=True)
        )
    assert first is not None and first.result == "changed"
    assert second is not None and second.result == "mismatch"
    (said,) = [entry for entry in logs if entry["event"] == "policy_reload_refused"]
    assert new in said["reason"] and "copy of the file differs" in said["reason"]
    assert two.ctx.policy_sha256 != new

    with_deploy_role(Path(two.ctx.settings.policy_file))
    caught_up = polls[1].poll_policy_reload(two.ctx)
    assert caught_up is not None and caught_up.result == "changed"
    assert two.ctx.policy_sha256 == new
    assert len(events(one, "policy_changed")) == 1


def test_policy_reload_refuses_a_file_with_errors_and_requests_nothing(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    policy.write_text(policy.read_text().replace("max_duration: 30m", "max_duration: forever"))
    env = {**os.environ, "DATABASE_URL": url, "POLICY_FILE": str(policy)}

    result = run_cli_here(tmp_path, env, "policy", "reload")

    assert result.returncode == 1
    assert "policy.yml:" in result.stdout and "max_duration" in result.stdout
    assert "nothing requested" in result.stderr
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT generation FROM policy_reload")) == 0
    engine.dispose()


def test_an_audit_trail_written_before_policy_hashes_still_verifies(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_events(engine, 50)  # as written before 0009: no policy_sha256
    engine.dispose()
    policy = write_policy(tmp_path / "policy.yml", webhook.url)
    bot = BotHarness(make_settings(tmp_path, slack, policy, url), slack)
    try:
        bot.granted("orders-api read 30m PAY-5 look at orders", BOB, LEAD1)
    finally:
        bot.stop()
    env = {**os.environ, "DATABASE_URL": url}

    verified = run_cli_here(tmp_path, env, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout
    exported = [
        json.loads(line)
        for line in run_cli_here(
            tmp_path, env, "audit", "export", "--since", "2000-01-01", "--format", "jsonl"
        ).stdout.splitlines()
    ]
    assert exported[0]["policy_sha256"] is None
    assert exported[-1]["policy_sha256"] == file_sha256(policy)

    factory = make_sessionmaker(make_engine(url))
    with transaction(factory) as db:
        last = db.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last is not None
        db.execute(
            text("UPDATE audit_events SET policy_sha256 = :other WHERE id = :id"),
            {"other": "0" * 64, "id": last.id},
        )
    engine_of(factory).dispose()
    broken = run_cli_here(tmp_path, env, "audit", "verify")
    assert broken.returncode == 1 and f"(seq {last.seq})" in broken.stdout


def test_the_access_review_names_a_reloaded_policy_that_widened_access(
    sqlite_bot: BotHarness,
) -> None:
    ctx = sqlite_bot.ctx
    new = with_deploy_role(Path(ctx.settings.policy_file))
    assert reload_policy(ctx, trigger=SIGHUP).result == "changed"
    with reading(ctx.db) as db:
        review = build_review(
            db, ctx.policy, clock.now() - timedelta(days=1), clock.now() + timedelta(minutes=1)
        )
    text = render_markdown(review)
    assert f"policy {new[:12]}… in force" in text
    assert "(SIGHUP, prod-access): 1 change(s) giving wider access" in text
