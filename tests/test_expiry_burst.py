"""The expiry sweep's burst (app/jobs/burst.py): sessions claimed ahead of their end
(EXPIRY_LEAD_SECONDS) are revoked at their end, never before it except by a burst's bounded
head start (EXPIRY_REVOKE_AHEAD_SECONDS), which the audit trail states; two sessions of the
same access in one burst are both ended, the provider called one after the other.

The timing assertions are lower bounds only (a revoke never comes earlier than allowed), which
a slow machine cannot break."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import audit, clock
from app.db import transaction
from app.jobs import burst
from app.models import AccessSession, AuditEvent, SessionState
from tests.conftest import BotHarness
from tests.fakes.sessions import seed_sessions
from tests.fakes.webhook_receiver import WebhookReceiver


def _seed(
    bot: BotHarness, count: int, expires_at: datetime, identity: str | None = None
) -> list[str]:
    """`count` active sessions of BOB on orders-api (write) ending at `expires_at`, each for
    its own identity unless one is given."""
    same = {"identity": identity, "email": identity} if identity else {}
    return seed_sessions(bot.ctx.db, count, expires_at=expires_at, **same)


def _revoked_events(bot: BotHarness, ids: list[str]) -> dict[str, dict[str, Any]]:
    with transaction(bot.ctx.db) as db:
        rows = db.execute(
            select(AuditEvent.session_id, AuditEvent.detail_json).where(
                AuditEvent.event == "revoked", AuditEvent.session_id.in_(ids)
            )
        ).all()
    return {str(session_id): json.loads(detail) for session_id, detail in rows}


def _ended(bot: BotHarness, ids: list[str]) -> dict[str, AccessSession]:
    with transaction(bot.ctx.db) as db:
        rows = db.scalars(select(AccessSession).where(AccessSession.id.in_(ids))).all()
        return {row.id: row for row in rows}


@pytest.mark.parametrize("ahead", [0.0, 0.4])
def test_a_burst_claimed_ahead_is_revoked_no_earlier_than_allowed_and_says_when(
    bot: BotHarness, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, ahead: float
) -> None:
    settings = {"expiry_lead_seconds": 2.0, "expiry_revoke_ahead_seconds": ahead}
    bot.ctx.settings = bot.ctx.settings.model_copy(update=settings)
    monkeypatch.setattr(burst, "SEND_SECONDS", 0.05)  # 40 queued: as early as allowed
    ends = clock.now() + timedelta(seconds=1.5)
    ids = _seed(bot, 40, ends)

    result = bot.sweep()  # claims them now (within the lead), returns once all are revoked

    assert sorted(result.expired) == sorted(ids)
    assert {r.body["session_id"] for r in webhook.requests if r.body["action"] == "revoke"} == set(
        ids
    )
    allowed = ends - timedelta(seconds=ahead)
    events = _revoked_events(bot, ids)
    sessions = _ended(bot, ids)
    assert set(events) == set(ids)
    for session_id, detail in events.items():
        revoked_at = datetime.fromisoformat(detail["revoked_at"])
        assert revoked_at >= allowed  # never earlier than the head start allows
        ended = sessions[session_id]
        assert ended.state == SessionState.ended and ended.ended_at == revoked_at
        if revoked_at < ends:  # said so, truthfully
            early = detail["before_expires_at_seconds"]
            assert 0 < early <= ahead + 0.001
            assert early == round((ends - revoked_at).total_seconds(), 3)
        else:
            assert "before_expires_at_seconds" not in detail
    with transaction(bot.ctx.db) as db:
        assert audit.verify(db).ok


def test_two_sessions_of_the_same_access_in_one_burst_are_both_ended(
    bot: BotHarness, webhook: WebhookReceiver
) -> None:
    ids = _seed(bot, 2, clock.now() - timedelta(seconds=1), identity="shared@example.com")

    result = bot.sweep()

    assert sorted(result.expired) == sorted(ids)
    assert {s.state for s in _ended(bot, ids).values()} == {SessionState.ended}
    revokes = [r.body["session_id"] for r in webhook.requests if r.body["action"] == "revoke"]
    assert sorted(revokes) == sorted(ids)  # one after the other, each its own Idempotency-Key
