"""The policy the busy-approver tests run the bot with: orders-api, whose `write` role only TOM
and LEAD1 approve (LEA approves the system's other roles), an `admin` role that needs two of
TOM, LEAD1 and LEA, a `deploy` role that needs two of TOM, LEAD1 and LEAD2; and billing, which
LEA does not approve. NOTE is told of every request and decides none; waiting requests are
escalated to C0ESCALATE."""

from __future__ import annotations

import textwrap
from pathlib import Path

TOM, LEA, NOTE = "U0TOM", "U0LEA", "U0NOTE"
ESCALATION_CHANNEL = "C0ESCALATE"
#: For the fake Slack's users.info (a request needs the requester's email).
PEOPLE = {
    TOM: {"email": "tom@example.com", "name": "tom"},
    LEA: {"email": "lea@example.com", "name": "lea"},
    NOTE: {"email": "note@example.com", "name": "note"},
}


def write_busy_policy(path: Path, webhook_url: str, defaults: str | None = None) -> Path:
    """`defaults`: the busy-approver keys of `defaults` (default: an escalation channel and
    NOTE to notify; the built-in 10m reminder and 30m escalation)."""
    busy = (
        defaults
        if defaults is not None
        else f"escalation_channel: {ESCALATION_CHANNEL}\nnotify: [{NOTE}]"
    )
    config = f"{{url: '{webhook_url}', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}"
    path.write_text(
        textwrap.dedent(
            """\
            defaults:
              approver_channel: C0APPROVALS
              ticket_pattern: '^[A-Z][A-Z0-9]+-\\d+$'
              email_domains: [example.com]
              max_duration: 2h
            {busy}
            systems:
              - id: orders-api
                name: Orders API
                provider: webhook
                config: {config}
                identity: '{{email}}'
                approvers: [{TOM}, {LEA}, U0LEAD1]
                roles:
                  - {{id: read, grant: orders-viewer, max_duration: 30m}}
                  - {{id: write, grant: orders-admin, approvers: [{TOM}, U0LEAD1]}}
                  - id: admin
                    grant: orders-root
                    approvers: [{TOM}, U0LEAD1, {LEA}]
                    approvals_required: 2
                  - id: deploy
                    grant: orders-deploy
                    approvers: [{TOM}, U0LEAD1, U0LEAD2]
                    approvals_required: 2
              - id: billing
                name: Billing
                provider: webhook
                config: {config}
                identity: '{{email}}'
                approvers: [{TOM}, U0LEAD2]
                roles:
                  - {{id: write, grant: billing-admin}}
            """
        ).format(busy=textwrap.indent(busy, "  "), config=config, TOM=TOM, LEA=LEA),
        encoding="utf-8",
    )
    return path
