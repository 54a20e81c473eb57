"""The policy file the tests (and bench/) run the bot with: one webhook system, orders-api."""

from __future__ import annotations

import textwrap
from pathlib import Path

ALICE, BOB, LEAD1, LEAD2, MALLORY = "U0ALICE", "U0BOB", "U0LEAD1", "U0LEAD2", "U0MALLORY"


def write_policy(
    path: Path,
    webhook_url: str,
    extra_systems: str = "",
    approvers: tuple[str, ...] = (LEAD1, LEAD2, ALICE),
    channel: str = "C0APPROVALS",
) -> Path:
    """The tests' policy: one webhook system, `orders-api` (read ≤ 30m, write ≤ 2h)."""
    path.write_text(
        textwrap.dedent(
            f"""\
            defaults:
              approver_channel: {channel}
              ticket_pattern: '^[A-Z][A-Z0-9]+-\\d+$'
              email_domains: [example.com]
              default_duration: 1h
              max_duration: 2h
              closeout_reminders: [15m, 1h, 24h]
            systems:
              - id: orders-api
                name: Orders API
                provider: webhook
                config: {{url: '{webhook_url}', secret_env: TEST_WEBHOOK_SECRET, timeout: 2}}
                identity: '{{email}}'
                approvers: [{", ".join(approvers)}]
                roles:
                  - {{id: read, grant: orders-viewer, max_duration: 30m}}
                  - {{id: write, grant: orders-admin, max_duration: 2h}}
            """
        )
        + extra_systems,
        encoding="utf-8",
    )
    return path
