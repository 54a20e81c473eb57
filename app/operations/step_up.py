"""Step-up approvals: an Approve on a role with `step_up` (or a break-glass with
`breakglass.step_up`) counts only after the person proves, with a fresh MFA login at the
company's identity provider, that they are who clicked.

The steps, each a function here:
1. `approve_or_start` (the Approve click): the same checks as an approval (an approver, not the
   requester, not counted yet, the request pending); then, instead of counting, a link is
   issued (`StepUpLink`). `start_breakglass` does the same for the person breaking the glass.
2. `open_link` (`GET /step-up/<token>`): the login's state, nonce and PKCE verifier are kept
   with the link's row; the answer is where to send the browser.
3. `finish` (`GET /step-up/callback`): the code is exchanged and the ID token verified
   (app/oidc.py), the person matched, the link consumed under a row lock, and then the
   existing path records the decision exactly as a click does (N-of-M, the card, the grant),
   with the login's issuer, sub, amr and auth_time in the audit event.

Rules it relies on:
- A link's token is random (authlib's generate_token), stored only as its sha256, bound to one
  person, one request and one decision, valid LINK_TTL, and used once.
- Who is who: the ID token's verified email equals the person's Slack profile email, or its
  `sub` equals `users.<slack id>.oidc_subject` in the policy.
- Every refusal raises StepUpFailed after an audit event `step_up_failed` with its reason (one
  of REASONS), in a transaction of its own, and changes nothing else: the link stays usable
  until it is used or expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from authlib.common.security import generate_token
from sqlalchemy import select

from app import audit, clock
from app.context import AppContext
from app.db import transaction
from app.models import AccessRequest, RequestState
from app.models_features import StepUpLogin
from app.oidc import OidcClient, OidcUnavailable, StepUpRefused, VerifiedLogin
from app.operations import people
from app.operations.common import read_row
from app.operations.decide_request import (
    Decision,
    approve_and_grant,
    check_decider,
    needs_step_up,
)
from app.operations.errors import ConflictError, OperationError
from app.operations.queries import with_approvals
from app.operations.request_access import policy_route, submit_request
from app.policy_values import format_duration

LINK_TTL = timedelta(minutes=5)
APPROVE, BREAKGLASS = "approve", "breakglass"
ANONYMOUS = "anonymous"  # the actor of a refusal nobody can be named for (an unknown link)
REASONS = (
    "unknown_token",
    "reused_token",
    "expired_token",
    "state_mismatch",
    "login_failed",
    "provider_error",
    "bad_signature",
    "invalid_token",
    "nonce_mismatch",
    "stale_login",
    "no_mfa",
    "wrong_person",
    "requester",
    "refused",
)


class StepUpFailed(OperationError):
    """A refused step-up; `reason` is the audit's word (REASONS), str() a sentence for the
    person in the browser."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class StepUpLink:
    """What the person gets instead of an immediate decision: where to confirm, and with whom."""

    url: str
    provider: str
    request_id: str


@dataclass(frozen=True)
class Outcome:
    """What a finished step-up did, as the page says it."""

    text: str
    decision: Decision | None


def _oidc(ctx: AppContext) -> OidcClient:
    if ctx.oidc is None or not ctx.settings.public_url:
        raise OperationError(
            "Step-up is not set up: PUBLIC_URL and the OIDC settings are needed (see .env.example)."
        )
    return ctx.oidc


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- 1. the click ---------------------------------------------------------------------


def approve_or_start(ctx: AppContext, request_id: str, approver_id: str) -> Decision | StepUpLink:
    """An approver's Approve: counted at once (`approve_and_grant`) where the role needs no
    step-up; otherwise, after the same checks, a link to confirm it."""
    request = read_row(ctx, AccessRequest, request_id, with_approvals)
    if not needs_step_up(ctx, request):
        return approve_and_grant(ctx, request_id, approver_id)
    check_decider(ctx, request, approver_id, "approve")
    people.check_still_requester(ctx, request)
    if request.state != RequestState.pending:
        raise ConflictError(f"Request {request.id} was already {request.state.value}.")
    if approver_id in request.approved_by:
        raise ConflictError(f"You already approved {request.id}.")
    return _issue(ctx, request, approver_id, APPROVE)


def start_breakglass(ctx: AppContext, request_id: str) -> StepUpLink | None:
    """A break-glass whose system says `breakglass.step_up`: the link for the requester to
    confirm it (None where the policy asks for none)."""
    request = read_row(ctx, AccessRequest, request_id)
    if not ctx.policy.breakglass_step_up(request.system_id):
        return None
    return _issue(ctx, request, request.requester_id, BREAKGLASS)


def _issue(ctx: AppContext, request: AccessRequest, user_id: str, purpose: str) -> StepUpLink:
    oidc = _oidc(ctx)
    token = generate_token(43)
    now = clock.now()
    with transaction(ctx.db) as db:
        db.add(
            StepUpLogin(
                id=_digest(token),
                request_id=request.id,
                user_id=user_id,
                purpose=purpose,
                created_at=now,
                expires_at=now + LINK_TTL,
            )
        )
        audit.record(
            db,
            "step_up_started",
            user_id,
            request=request,
            purpose=purpose,
            issuer=oidc.issuer,
            expires_at=(now + LINK_TTL).isoformat(),
        )
    return StepUpLink(f"{ctx.settings.public_url}/step-up/{token}", oidc.name, request.id)


# --- 2. the link is opened ----------------------------------------------------------------


def open_link(ctx: AppContext, token: str) -> tuple[str, str]:
    """(the authorization URL to send the browser to, the login's state for its cookie)."""
    oidc = _oidc(ctx)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    with transaction(ctx.db) as db:
        login = db.get(StepUpLogin, _digest(token), with_for_update=True)
        problem = _unusable(login)
        if login is not None and problem is None:
            login.state, login.nonce, login.code_verifier = state, nonce, verifier
    if login is None or problem is not None:
        _refuse(ctx, login, *(problem or ("unknown_token", "")))
    try:
        url = oidc.authorization_url(state, nonce, verifier, _max_age(ctx))
    except OidcUnavailable as exc:
        _refuse(ctx, login, "provider_error", f"The identity provider cannot be reached ({exc}).")
    return url, state


def _unusable(login: StepUpLogin | None) -> tuple[str, str] | None:
    if login is None:
        return "unknown_token", "This confirmation link is not known."
    if login.used_at is not None:
        return "reused_token", "This confirmation link was used already."
    if login.expires_at <= clock.now():
        return "expired_token", "This confirmation link has expired; click Approve again."
    return None


def _max_age(ctx: AppContext) -> int:
    """How fresh the login must be, in seconds (defaults.step_up_max_age)."""
    return int(ctx.policy.defaults.step_up_max_age.total_seconds())


# --- 3. the identity provider sends the browser back ---------------------------------------


def finish(
    ctx: AppContext,
    state: str | None,
    code: str | None,
    browser_state: str | None,
    error: str | None = None,
) -> Outcome:
    """Verify the login that `state` names and record the decision it confirms. `browser_state`
    is the state the browser kept (its cookie): a callback from another browser is refused."""
    oidc = _oidc(ctx)
    login = _by_state(ctx, state) if state else None
    if login is None or browser_state != state:
        _refuse(
            ctx, login, "state_mismatch", "This login was not started here; open the link again."
        )
    assert login is not None and login.nonce and login.code_verifier
    problem = _unusable(login)
    if problem is not None:
        _refuse(ctx, login, *problem)
    if error or not code:
        _refuse(ctx, login, "login_failed", "The identity provider did not log you in.")
    assert code is not None
    try:
        id_token = oidc.exchange(code, login.code_verifier)
        verified = oidc.verify(
            id_token,
            login.nonce,
            _max_age(ctx),
            ctx.policy.defaults.step_up_amr,
        )
    except OidcUnavailable as exc:
        _refuse(ctx, login, "provider_error", f"The identity provider failed: {exc}.")
    except StepUpRefused as exc:
        _refuse(ctx, login, exc.reason, str(exc))
    request = read_row(ctx, AccessRequest, login.request_id)
    _check_person(ctx, login, request, verified)
    _consume(ctx, login)
    evidence = {
        "issuer": verified.issuer,
        "sub": verified.subject,
        "amr": verified.amr,
        "auth_time": datetime.fromtimestamp(verified.auth_time, UTC).isoformat(),
    }
    try:
        if login.purpose == BREAKGLASS:
            decision = submit_request(
                ctx, login.request_id, policy_route(ctx.policy, request), evidence
            )
        else:
            decision = approve_and_grant(ctx, login.request_id, login.user_id, evidence)
    except OperationError as exc:
        _refuse(ctx, login, "refused", str(exc))
    if decision is None and login.purpose == BREAKGLASS:
        _refuse(ctx, login, "refused", f"Request {request.id} is no longer pending.")
    return Outcome(_said(request, decision, login.purpose), decision)


def _by_state(ctx: AppContext, state: str) -> StepUpLogin | None:
    with transaction(ctx.db) as db:
        return db.scalars(select(StepUpLogin).where(StepUpLogin.state == state)).first()


def _check_person(
    ctx: AppContext, login: StepUpLogin, request: AccessRequest, verified: VerifiedLogin
) -> None:
    if _is(ctx, login.user_id, verified):
        return
    if login.purpose == APPROVE and _is(ctx, request.requester_id, verified):
        _refuse(ctx, login, "requester", "You logged in as the requester, who cannot approve.")
    _refuse(
        ctx,
        login,
        "wrong_person",
        "You logged in as someone else than the person who clicked in Slack.",
        subject=verified.subject,
        email=verified.email,
    )


def _is(ctx: AppContext, user_id: str, verified: VerifiedLogin) -> bool:
    """Is the verified login the Slack user `user_id` (the policy's oidc_subject, else the
    Slack profile email)?"""
    override = ctx.policy.users.get(user_id)
    if override is not None and override.oidc_subject:
        return override.oidc_subject == verified.subject
    email = ctx.directory.email_for(user_id)
    return bool(email and verified.email and email.lower() == verified.email.lower())


def _consume(ctx: AppContext, login: StepUpLogin) -> None:
    """Use the link, once: under its row lock, checked again (another replica, a second tab)."""
    with transaction(ctx.db) as db:
        row = db.get(StepUpLogin, login.id, with_for_update=True, populate_existing=True)
        problem = _unusable(row)
        if row is not None and problem is None:
            row.used_at = clock.now()
    if problem is not None:
        _refuse(ctx, login, *problem)


def _said(request: AccessRequest, decision: Decision | None, purpose: str) -> str:
    who = request.identity or request.requester_id
    what = (
        f"{who}, {request.role_id} on {request.system_id} for "
        f"{format_duration(timedelta(seconds=request.duration_seconds))}"
    )
    if purpose == BREAKGLASS:
        return f"Break-glass granted: {what}"
    if decision is not None and decision.approved:
        return f"Approved: {what}"
    done = len(decision.request.approved_by) if decision is not None else 0
    return f"Approval counted ({done} of {request.approvals_required}): {what}"


def _refuse(
    ctx: AppContext, login: StepUpLogin | None, reason: str, message: str, **detail: Any
) -> NoReturn:
    """Audit the refusal (its own transaction), then raise it."""
    with transaction(ctx.db) as db:
        request = db.get(AccessRequest, login.request_id) if login is not None else None
        audit.record(
            db,
            "step_up_failed",
            login.user_id if login is not None else ANONYMOUS,
            request=request,
            reason=reason,
            **audit.present(purpose=login.purpose if login else None, **detail),
        )
    raise StepUpFailed(reason, message)
