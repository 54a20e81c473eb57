"""What the blocks/ tests build their inputs and read their outputs with: a policy (orders-api
from tests/fakes/policy.py, a staging system and a break-glass system), requests and sessions
made in memory (no database), and Block Kit parsed and validated by slack_sdk's models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from app.models import (
    AccessRequest,
    AccessSession,
    Approval,
    CloseoutState,
    RequestKind,
    RequestState,
    Route,
    SessionState,
)
from app.policy import Policy, load_policy
from tests.fakes.policy import BOB, LEAD1, LEAD2, write_policy

#: User text that would ping the channel and fake a link and a mention if it were not escaped.
HOSTILE = "<!channel> <http://evil|x> & <@U0BOB>"
HOSTILE_SHOWN = "&lt;!channel&gt; &lt;http://evil|x&gt; &amp; &lt;@U0BOB&gt;"
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)

EXTRA_SYSTEMS = f"""\
  - id: orders-staging
    name: Orders staging
    tier: staging
    provider: webhook
    config: {{url: 'http://127.0.0.1:9/hook', secret_env: TEST_WEBHOOK_SECRET}}
    approvers: [{LEAD1}]
    roles:
      - {{id: write, grant: staging-admin}}
  - id: checkout-db
    name: Checkout DB
    provider: webhook
    config: {{url: 'http://127.0.0.1:9/hook', secret_env: TEST_WEBHOOK_SECRET}}
    approvers: [{LEAD1}, {LEAD2}]
    breakglass: {{users: [{BOB}], review_within: 15m, escalation_channel: C0INCIDENTS}}
    roles:
      - {{id: write, grant: checkout-admin, max_duration: 4h}}
"""


def blocks_policy(folder: Path) -> Policy:
    """orders-api (read ≤ 30m, write ≤ 2h), orders-staging (staging tier) and checkout-db
    (break-glass for BOB, reviewed within 15m)."""
    path = write_policy(folder / "policy.yml", "http://127.0.0.1:9/hook", EXTRA_SYSTEMS)
    return load_policy(path)


def request(approvals: tuple[str, ...] = (), **fields: Any) -> AccessRequest:
    """A pending access request from BOB for orders-api write, 1h, ticket PAY-184."""
    values: dict[str, Any] = {
        "id": "R-7K3Q9X2M",
        "requester_id": BOB,
        "system_id": "orders-api",
        "role_id": "write",
        "duration_seconds": 3600,
        "ticket": "PAY-184",
        "reason": "restart the payment worker",
        "state": RequestState.pending,
        "created_at": NOW,
        "kind": RequestKind.access,
        "route": Route.approvers,
        "approvals_required": 1,
        "escalations": 0,
    }
    values.update(fields)
    row = AccessRequest(**values)
    row.approvals = [Approval(approver_id=a, at=NOW) for a in approvals]
    return row


def session(of: AccessRequest | None = None, **fields: Any) -> AccessSession:
    """The active session of `of` (by default a fresh `request()`), ending in an hour."""
    of = of if of is not None else request(state=RequestState.approved)
    values: dict[str, Any] = {
        "id": "S-4F6H8J2K",
        "request": of,
        "request_id": of.id,
        "requester_id": of.requester_id,
        "system_id": of.system_id,
        "role_id": of.role_id,
        "grant_name": "orders-admin",
        "identity": "bob@example.com",
        "state": SessionState.active,
        "created_at": NOW,
        "granted_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
        "attempts": 0,
        "closeout_state": CloseoutState.not_due,
        "reminders_sent": 0,
    }
    values.update(fields)
    return AccessSession(**values)


def parsed(blocks: list[dict]) -> list[dict]:
    """The blocks, each parsed and validated by slack_sdk (Slack's types and limits), as dicts."""
    for block in blocks:
        model = Block.parse(block)
        assert model is not None, block
        model.validate_json()
        assert model.to_dict() == block
    return blocks


def parsed_view(view: dict) -> dict:
    """A modal or Home view, validated by slack_sdk's View (title, buttons, blocks, limits)."""
    View(**view).validate_json()
    parsed(view["blocks"])
    return view


def text_of(block: dict) -> str:
    """The mrkdwn a section or a one-element context block shows."""
    if block["type"] == "context":
        [element] = block["elements"]
        return element["text"]
    return block["text"]["text"]


def buttons(block: dict) -> list[tuple[str, str, str]]:
    """An actions block's buttons as (label, action_id, value)."""
    assert block["type"] == "actions"
    return [(b["text"]["text"], b["action_id"], b["value"]) for b in block["elements"]]
