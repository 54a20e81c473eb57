"""Messages to the requester, built straight from rows in memory: each decision's DM, the
granted message and its buttons, the closeout prompt, failures; user text stays text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.models import RequestKind, RequestState, ReviewState, Route, SessionState
from app.policy import Policy
from app.slack.blocks import dm
from app.slack.blocks.answers import accepted_text
from app.slack.text import slack_date
from tests.blocks_rows import (
    HOSTILE,
    HOSTILE_SHOWN,
    NOW,
    blocks_policy,
    buttons,
    parsed,
    request,
    session,
    text_of,
)
from tests.fakes.policy import BOB, LEAD1, LEAD2

ENDS = NOW + timedelta(hours=1)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return blocks_policy(Path(tmp_path_factory.mktemp("dm")))


def test_granted_message_says_until_when_and_offers_end_now_and_extend(policy: Policy) -> None:
    active = session(request(state=RequestState.approved, ticket=HOSTILE))
    text, actions = parsed(dm.granted_message(policy, active))
    assert text_of(text) == (
        f":unlock: You have *write* production access to *Orders API* until {slack_date(ENDS)} "
        f"(session `S-4F6H8J2K`, ticket {HOSTILE_SHOWN}). It ends by itself; end it sooner when "
        "done."
    )
    assert actions["block_id"] == "session:S-4F6H8J2K"
    assert buttons(actions) == [
        ("End access now", "end_session", "S-4F6H8J2K"),
        ("Extend", "extend_session", "S-4F6H8J2K"),
    ]
    assert dm.granted_text(policy, active) == (
        f"You have write production access to orders-api until {slack_date(ENDS)}."
    )


def test_closeout_prompt_and_its_reminders_offer_the_note(policy: Policy) -> None:
    ended = session(state=SessionState.ended, end_reason="released", ended_by=BOB)
    head, actions = parsed(dm.closeout_prompt(policy, ended))
    assert text_of(head) == (
        f":lock: Your *write* production access to *Orders API* has ended (ended early by "
        f"<@{BOB}>). What did you change? Please write a short closeout note for `S-4F6H8J2K`."
    )
    assert buttons(actions) == [("Write closeout note", "open_closeout", "S-4F6H8J2K")]
    head, _ = parsed(dm.closeout_prompt(policy, ended, reminder=2))
    assert text_of(head) == (
        ":memo: Reminder 2: the closeout note for *write* production access to *Orders API* "
        "(`S-4F6H8J2K`) is still missing."
    )
    assert dm.ended_text(policy, ended) == (
        "Your production access S-4F6H8J2K has ended. Please write a closeout note."
    )
    assert dm.reminder_text(ended) == "Reminder: the closeout note for S-4F6H8J2K is missing."


def test_denial_dm_names_the_denier_and_shows_the_reason_as_text(policy: Policy) -> None:
    denied = request(state=RequestState.denied, decided_by=LEAD1, decision_note=HOSTILE)
    assert dm.decision(policy, denied, None) == (
        f":x: <@{LEAD1}> denied your request `R-7K3Q9X2M` for *write* production access to "
        f"*Orders API*. Reason: {HOSTILE_SHOWN}"
    )


def test_lapsed_dm_says_why_and_a_cancel_sends_nothing(policy: Policy) -> None:
    lapsed = request(state=RequestState.lapsed)
    assert dm.decision(policy, lapsed, None) == (
        ":hourglass: Your request `R-7K3Q9X2M` for *write* production access to *Orders API* "
        "lapsed: nobody decided in time. Ask again if you still need it."
    )
    assert dm.decision(policy, request(state=RequestState.cancelled), None) is None


def test_approval_dm_names_every_approver(policy: Policy) -> None:
    approved = request(approvals=(LEAD1, LEAD2), state=RequestState.approved)
    assert dm.decision(policy, approved, None) == (
        f":white_check_mark: <@{LEAD1}>, <@{LEAD2}> approved your request `R-7K3Q9X2M`. "
        "Granting *write* production access to *Orders API*…"
    )


def test_auto_approval_dm_says_by_which_rule(policy: Policy) -> None:
    auto = request(
        state=RequestState.approved,
        route=Route.staging,
        system_id="orders-staging",
        decided_at=NOW,
        decision_note="staging tier",
    )
    assert dm.decision(policy, auto, None) == (
        f":robot_face: *Auto-approved* {slack_date(NOW)} (staging tier): request `R-7K3Q9X2M`. "
        "Granting *write* staging access to *Orders staging*…"
    )


def test_extension_dm_gives_the_new_end(policy: Policy) -> None:
    extended = session(expires_at=NOW + timedelta(hours=3))
    extension = request(
        id="R-EXT00001",
        kind=RequestKind.extension,
        state=RequestState.approved,
        extends_session_id=extended.id,
    )
    assert dm.decision(policy, extension, extended) == (
        ":stopwatch: Extension `R-EXT00001` approved: your *write* production access to "
        f"*Orders API* now ends {slack_date(NOW + timedelta(hours=3))}."
    )


def test_breakglass_is_explained_in_the_same_words_in_the_answer_and_the_dm(
    policy: Policy,
) -> None:
    taken = request(system_id="checkout-db", state=RequestState.approved, route=Route.breakglass)
    assert accepted_text(taken, (Route.breakglass, "incident")) == (
        ":rotating_light: Break-glass `R-7K3Q9X2M`: granting now. The approvers are told and "
        "will review it."
    )
    assert dm.decision(policy, taken, None) == (
        ":rotating_light: Break-glass `R-7K3Q9X2M`: granting *write* production access to "
        "*Checkout DB* now. The approvers are told and will review it."
    )


def test_flagged_breakglass_dm_names_the_reviewer() -> None:
    flagged = request(route=Route.breakglass, review_state=ReviewState.flagged, reviewed_by=LEAD2)
    assert dm.breakglass_flagged(flagged) == (
        f":triangular_flag_on_post: <@{LEAD2}> flagged your break-glass access `R-7K3Q9X2M`; "
        "it is being ended now."
    )


def test_grant_failed_dm_gives_the_retry_window_and_escapes_the_error(policy: Policy) -> None:
    failed = session(state=SessionState.grant_failed, last_error=HOSTILE)
    assert dm.grant_failed(policy, failed) == (
        f":warning: Granting *write* production access to *Orders API* failed: {HOSTILE_SHOWN}. "
        "Nothing was granted; you or an approver can retry from the card within 15m of the "
        "approval."
    )
    unknown = session(state=SessionState.grant_unknown, last_error=None)
    assert dm.grant_failed(policy, unknown) == (
        ":warning: Granting *write* production access to *Orders API* failed (unknown error) "
        "and the system could not say whether it is in place. It is being checked again and "
        "revoked if found; ask for it again if you still need it."
    )


def test_requester_hears_where_the_request_waits_or_why_it_was_not_posted(
    policy: Policy,
) -> None:
    pending = request(ticket=HOSTILE)
    assert dm.waiting_for_approval(policy, pending, "C0APPROVALS") == (
        "Your request `R-7K3Q9X2M` for *write* production access to *Orders API* "
        f"(ticket {HOSTILE_SHOWN}) is waiting for approval in <#C0APPROVALS>."
    )
    assert dm.card_not_posted(pending, "C0APPROVALS", "not_in_channel <x>") == (
        ":warning: Your request `R-7K3Q9X2M` could not be posted to <#C0APPROVALS> "
        "(not_in_channel &lt;x&gt;). Nobody has seen it yet; ask an admin to invite the bot "
        "to that channel."
    )
    assert dm.closeout_saved(session()) == (
        ":memo: Thanks, your closeout note for `S-4F6H8J2K` is saved."
    )
