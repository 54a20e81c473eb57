"""Hostile input gets a clear answer, never an error page or a stalled ack: durations too long
for a timedelta, in the quick form and in every modal where a duration is submitted (forged
payloads included), and ticket patterns that would backtrack for ever in Python's `re`.

Signed requests go to the real HTTP endpoint; the ticket-pattern story runs the real
`prod-access serve` process, so a stalled regex (which holds the GIL) stalls the server and not
the test, and the test's HTTP timeout turns that into a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.policy import PolicyError, load_policy
from tests.conftest import BOB, LEAD1, BotHarness, run_cli_here
from tests.fakes.serve import ServeProcess, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import select, text_input
from tests.fakes.webhook_receiver import WebhookReceiver

HUGE_DURATIONS = ("1000000000d", "99999999999999999999h")
TOO_LONG = "is too long (at most 365d)"


# --- durations ----------------------------------------------------------------------------


def test_quick_form_answers_an_overflowing_duration_like_any_bad_duration(
    bot: BotHarness,
) -> None:
    for duration in HUGE_DURATIONS:
        answer = bot.send.command(f"orders-api read {duration} PAY-1 why", BOB)
        assert answer.status == 200, answer
        assert f"Duration '{duration}' {TOO_LONG}." in answer.text
        assert "/prod-access &lt;system&gt; &lt;role&gt; &lt;duration&gt;" in answer.text
    assert bot.slack.calls_to("chat.postMessage") == []  # nothing was requested


def test_request_modal_submit_with_a_forged_overflowing_duration_shows_it_inline(
    bot: BotHarness,
) -> None:
    """The modal offers a select, but a submit is only a payload: anyone can send any value."""
    view = {"type": "modal", "callback_id": "request_access", "id": "V1", "blocks": []}
    for duration in HUGE_DURATIONS:
        answer = bot.send.submit(
            view,
            {
                "system": select("orders-api", "system_select"),
                "role:orders-api": select("read", "role_select"),
                "duration:orders-api:read": select(duration, "duration_select"),
                "ticket": text_input("PAY-1", "ticket_input"),
                "reason": text_input("why", "reason_input"),
            },
            BOB,
        )
        assert answer.status == 200, answer
        body = answer.json()
        assert body["response_action"] == "errors"
        assert body["errors"] == {"duration:orders-api:read": f"Duration '{duration}' {TOO_LONG}."}
    assert bot.slack.calls_to("chat.postMessage") == []


def test_extend_modal_submit_with_an_overflowing_duration_shows_it_inline(
    bot: BotHarness,
) -> None:
    session = bot.granted("orders-api write 1h PAY-2 backfill", BOB, LEAD1)
    assert bot.send.click("extend_session", session.id, BOB, channel="D0BOB").status == 200
    modal = bot.slack.wait_for(
        "views.open", lambda a: a["view"].get("private_metadata") == session.id
    )[-1]["view"]
    for duration in HUGE_DURATIONS:
        values = {
            "duration": select(duration, "duration_select"),
            "reason": text_input("more time", "reason_input"),
        }
        answer = bot.send.submit(modal, values, BOB)
        assert answer.status == 200, answer
        body = answer.json()
        assert body["response_action"] == "errors"
        assert body["errors"] == {"duration": f"Duration '{duration}' {TOO_LONG}."}
    assert bot.latest_request_id() == session.request_id  # no extension was asked for
    assert bot.session_for(session.request_id).expires_at == session.expires_at


# --- ticket patterns ------------------------------------------------------------------------

BACKTRACKING = r"^([A-Z0-9]+)+-\d+$"  # nested quantifiers: exponential in Python's `re`


def _with_ticket_pattern(policy: Path, pattern: str) -> int:
    """Put `pattern` (single-quoted YAML) in the policy's defaults; the line it is on."""
    text = policy.read_text()
    old = next(row for row in text.splitlines() if "ticket_pattern:" in row)
    policy.write_text(text.replace(old, f"  ticket_pattern: '{pattern}'"))
    return next(
        n for n, row in enumerate(policy.read_text().splitlines(), 1) if "ticket_pattern" in row
    )


def test_a_backtracking_ticket_pattern_still_answers_a_long_bad_ticket_at_once(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    _with_ticket_pattern(Path(env["POLICY_FILE"]), BACKTRACKING)
    server = ServeProcess(tmp_path, env)
    server.start()
    try:
        # The sender's HTTP timeout (10 s) fails the test if the ack never comes (with `re`
        # the worker would backtrack through 2^40 ways to split the A's, holding the GIL).
        answer = server.sender.command("orders-api read 10m " + "A" * 40 + "! why", BOB)
        assert answer.status == 200, answer
        assert "Ticket must match ^([A-Z0-9]+)+-\\d+$ (e.g. PAY-184 or INC-7)." in answer.text
        fine = server.sender.command("orders-api read 10m PAY1-184 why", BOB)
        assert "is on its way to the approvers" in fine.text
    finally:
        server.terminate()  # a worker stuck in a regex is killed by gunicorn after 30 s
        server.wait(timeout=60)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"^(INC|PAY)-\d+-\1$", r"invalid escape sequence: \1"),
        (r"^(?=[A-Z])[A-Z0-9]+-\d+$", "invalid perl operator: (?="),
        (r"^[A-Z]+-\d+(?<!-0)$", "invalid perl operator: (?<!"),
    ],
)
def test_a_ticket_pattern_re2_cannot_run_is_refused_at_start_with_file_line_and_reason(
    tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver, pattern: str, reason: str
) -> None:
    env = serve_env(tmp_path, slack, webhook)
    policy = Path(env["POLICY_FILE"])
    line = _with_ticket_pattern(policy, pattern)
    expected = (
        f"{policy}:{line}: defaults.ticket_pattern: ticket_pattern is not a valid regular "
        f"expression in RE2 syntax ({reason}); RE2 has no backreferences or lookaround"
    )
    with pytest.raises(PolicyError) as error:
        load_policy(policy)
    assert str(error.value) == expected

    checked = run_cli_here(tmp_path, env, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    policy_row = next(row for row in checked.stdout.splitlines() if row.startswith("policy"))
    assert "PROBLEM" in policy_row and policy_row.endswith(expected), checked.stdout
