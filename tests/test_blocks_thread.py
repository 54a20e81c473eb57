"""The approval card's thread, built straight from rows in memory: each line the approvers
read there (approvals, decisions, the grant, failures, the end, closeout, drift), and the
review upload; whatever people or providers wrote stays text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.models import (
    CloseoutState,
    EndReason,
    RequestKind,
    RequestState,
    ReviewState,
    Route,
    SessionState,
)
from app.policy import Policy
from app.review import Review
from app.slack.blocks import thread
from app.slack.blocks.review import review_upload
from app.slack.text import slack_date
from tests.blocks_rows import HOSTILE, HOSTILE_SHOWN, NOW, blocks_policy, request, session
from tests.fakes.policy import BOB, LEAD1, LEAD2


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return blocks_policy(Path(tmp_path_factory.mktemp("thread")))


def test_full_reason_is_quoted_and_escaped_line_by_line() -> None:
    assert thread.full_reason(request(reason=f"first\n{HOSTILE}")) == (
        f"*Full reason*\n> first\n> {HOSTILE_SHOWN}"
    )


def test_approval_counted_says_how_many_more_are_needed() -> None:
    counted = request(approvals=(LEAD1,), approvals_required=3)
    assert thread.approval_counted(counted, LEAD1) == (
        f":ballot_box_with_check: <@{LEAD1}> approved (1 of 3); 2 more needed."
    )


def test_extension_asked_points_to_the_new_card() -> None:
    asked = request(id="R-EXT00001", kind=RequestKind.extension, duration_seconds=1800)
    assert thread.extension_asked(asked, "C0APPROVALS") == (
        f":stopwatch: <@{BOB}> asked for 30m more (request `R-EXT00001`, a new card in "
        "<#C0APPROVALS>)."
    )


def test_breakglass_taken_asks_the_approvers_to_review() -> None:
    taken = request(route=Route.breakglass, state=RequestState.approved)
    assert thread.breakglass_taken(taken, f"<@{LEAD1}>") == (
        f":rotating_light: Break-glass by <@{BOB}>: access granted without approval. "
        f"<@{LEAD1}>: please review (Acknowledge or Flag on the card)."
    )


def test_breakglass_unreviewed_escalation_names_what_was_taken(policy: Policy) -> None:
    taken = request(system_id="checkout-db", ticket=HOSTILE, escalations=2)
    assert thread.breakglass_unreviewed(policy, taken, f"<@{LEAD1}>") == (
        f":rotating_light: *Break-glass not reviewed* — <@{BOB}> took *write* production "
        f"access to *Checkout DB* (`R-7K3Q9X2M`, ticket {HOSTILE_SHOWN}) without approval. "
        f"<@{LEAD1}>: please review it on the card (reminder 2)."
    )


def test_reviewed_says_flagged_or_acknowledged() -> None:
    flagged = request(review_state=ReviewState.flagged, reviewed_by=LEAD2)
    assert thread.reviewed(flagged) == (
        f":triangular_flag_on_post: <@{LEAD2}> flagged this break-glass access; it is being "
        "ended now."
    )
    acknowledged = request(review_state=ReviewState.acknowledged, reviewed_by=LEAD1)
    assert thread.reviewed(acknowledged) == (
        f":ballot_box_with_check: Reviewed and acknowledged by <@{LEAD1}>."
    )


def test_decided_tells_a_denial_and_an_extension_but_not_a_plain_approval() -> None:
    denied = request(state=RequestState.denied, decided_by=LEAD1, decision_note=HOSTILE)
    assert thread.decided(denied, None) == (
        f":x: <@{LEAD1}> denied the request. Reason: {HOSTILE_SHOWN}"
    )
    extended = session(expires_at=NOW + timedelta(hours=2))
    extension = request(
        approvals=(LEAD2,),
        kind=RequestKind.extension,
        state=RequestState.approved,
        decided_at=NOW,
    )
    assert thread.decided(extension, extended) == (
        f":stopwatch: Extended until {slack_date(NOW + timedelta(hours=2))}. "
        f":white_check_mark: *Approved* by <@{LEAD2}> {slack_date(NOW)}"
    )
    assert thread.decided(request(state=RequestState.approved), session()) is None
    assert thread.decided(request(state=RequestState.lapsed), None) is None


def test_granted_shows_the_identity_as_text() -> None:
    assert thread.granted(session(identity="<!here>")) == (
        f":unlock: Granted to `&lt;!here&gt;`; ends {slack_date(NOW + timedelta(hours=1))}."
    )


def test_grant_failed_escapes_the_provider_error() -> None:
    failed = session(state=SessionState.grant_failed, last_error=HOSTILE)
    assert thread.grant_failed(failed) == (
        f":warning: Grant failed: {HOSTILE_SHOWN}. Nothing was granted."
    )
    unknown = session(state=SessionState.grant_unknown, last_error="timeout")
    assert (
        thread.grant_failed(unknown) == ":warning: Grant outcome unknown: timeout. Checking again."
    )


def test_end_and_revoke_lines() -> None:
    ended = session(state=SessionState.ended, end_reason=EndReason.expired, attempts=4)
    assert thread.ended(ended) == ":lock: Access ended (expired)."
    assert thread.revoke_completed(ended) == (
        ":white_check_mark: Revoke of `S-4F6H8J2K` completed after 4 failed attempts; the "
        "access is removed."
    )
    failing = session(
        state=SessionState.revoke_failing,
        attempts=2,
        last_error=HOSTILE,
        next_attempt_at=NOW + timedelta(minutes=5),
    )
    assert thread.revoke_failed(failing) == (
        f":rotating_light: Revoke failed (attempt 2): {HOSTILE_SHOWN}. Access is still in "
        f"place; retrying {slack_date(NOW + timedelta(minutes=5))}."
    )


def test_closeout_lines_quote_the_note_as_text(policy: Policy) -> None:
    noted = session(
        state=SessionState.ended,
        closeout_state=CloseoutState.closed_out,
        closeout_changes=HOSTILE,
        closeout_followups=None,
        reminders_sent=3,
    )
    assert thread.closeout_note(noted) == (
        f":memo: *Closeout* by <@{BOB}> for `S-4F6H8J2K`\n*What changed*\n> {HOSTILE_SHOWN}\n"
        "*Follow-ups*\n> none"
    )
    assert thread.closeout_missing(policy, noted) == (
        f":memo: *Closeout note missing* — <@{BOB}> has not said what changed during *write* "
        "production access to *Orders API* (`S-4F6H8J2K`), after 3 reminders."
    )


def test_drift_shows_the_detail_as_text(policy: Policy) -> None:
    assert thread.drift(policy, session(), HOSTILE) == (
        f":rotating_light: *Access drift* — *write* production access to *Orders API* of "
        f"<@{BOB}> (`S-4F6H8J2K`): {HOSTILE_SHOWN}"
    )


def test_review_upload_is_named_by_its_period_with_the_summary_as_comment() -> None:
    review = Review(NOW - timedelta(days=7), NOW, attention=["R-1 approved by its requester"])
    upload = review_upload(review)
    assert upload.filename == "access-review-2025-02-25-to-2025-03-04.md"
    assert upload.title == "Access review 2025-02-25 to 2025-03-04"
    assert upload.initial_comment == (
        ":clipboard: Access review 2025-02-25 to 2025-03-04: 0 sessions (0 write, 0 read), "
        "0.0 h of access, 0 denials, 0 break-glass; 1 item(s) need attention."
    )
    assert upload.content.startswith("#")
