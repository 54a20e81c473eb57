"""Reload the policy while the bot runs: validate the file as start-up does, refuse it whole or
put it in force with its providers, and record the change once in the audit trail.

Rules it relies on:
- Validation is start-up's, reused: `load_policy`, `build_providers` (every provider's config
  and secrets), the settings the policy needs (app.doctor.needs_of_policy), and the open
  sessions rule (app/operations/policy_change.py: a policy that drops a system or role with
  open sessions is refused, naming them). Anything wrong refuses the whole file: the policy in
  force stays, a log line says why, and the first replica to refuse that file records
  `policy_reload_refused` and tells the approver channel (`defaults.approver_channel`, else the
  first system's).
- Policy and providers change together: one `PolicyInForce` snapshot replaced under
  `ctx.reloading`. A system whose provider and config are unchanged keeps its provider object;
  the others get the ones built while validating. Work that pinned the old snapshot (a Slack
  request, the work after its ack) finishes with it.
- Exactly once, however many replicas: the `policy_reload` row (locked) remembers the last
  change recorded and the last file refused. `policy_changed` carries the old and new sha256,
  what triggered it and app/policy_diff.py's text; it is committed before the swap, so a change
  in force is never missing from the trail.
- A start with another policy than the last one recorded is a change too (trigger `start`,
  without a diff: the old file is not at hand); the very first start records nothing.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.context import AppContext, PolicyInForce
from app.db import transaction
from app.doctor import needs_of_policy
from app.models_features import PolicyReload
from app.operations.policy_change import describe_uncovered, uncovered_sessions
from app.policy import Policy, PolicyError, load_policy
from app.policy_diff import Change, diff_policies, render
from app.providers.base import Provider, build_providers
from app.text import redact
from app.trackers.base import build_trackers

log = structlog.get_logger(__name__)

SIGHUP = "SIGHUP"
REQUESTED = "prod-access policy reload"
FILE_CHANGED = "file changed"
START = "start"
ROW_ID = 1

Result = Literal["changed", "unchanged", "refused", "mismatch"]


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: `changed` (in force now), `unchanged` (the file is the policy in
    force), `refused` (the file is wrong; `reason` says why), `mismatch` (this replica's file
    is not the one a `policy reload` asked for)."""

    result: Result
    sha256: str | None
    reason: str = ""
    diff: str = ""


class _Refused(Exception):
    """The new file cannot be put in force; str() says why."""


def file_sha256(path: str | Path) -> str:
    """The sha256 of the file's bytes (OSError when it cannot be read)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reload_policy(
    ctx: AppContext,
    *,
    trigger: str,
    expected_sha256: str | None = None,
    actor: str = audit.SYSTEM_ACTOR,
) -> ReloadOutcome:
    """Read the policy file again and put it in force, or refuse it whole. Never raises: it
    runs from a signal's thread and from a timer."""
    with ctx.reloading:
        current = ctx.in_force_now
        try:
            return _reload(ctx, current, trigger, expected_sha256, actor)
        except Exception as exc:  # the database is down, a plugin's bug: the old policy stays
            log.exception("policy_reload_failed", trigger=trigger)
            return ReloadOutcome("refused", None, f"reload failed: {type(exc).__name__}")


def _reload(
    ctx: AppContext,
    current: PolicyInForce,
    trigger: str,
    expected_sha256: str | None,
    actor: str,
) -> ReloadOutcome:
    path = ctx.settings.policy_file
    try:
        sha = file_sha256(path)
    except OSError as exc:
        reason = f"{path}: cannot read policy file: {exc.strerror}"
        log.warning("policy_reload_refused", reason=reason, trigger=trigger)
        return ReloadOutcome("refused", None, reason)
    if expected_sha256 is not None and sha != expected_sha256:
        reason = (
            f"{path} here has sha256 {sha}, not {expected_sha256} as `prod-access policy "
            "reload` asked: this replica's copy of the file differs (not updated yet?); the "
            "policy in force stays, and the requested one is put in force once the file has "
            "that hash"
        )
        return ReloadOutcome("mismatch", sha, reason)
    if sha == current.sha256:
        return ReloadOutcome("unchanged", sha)
    try:
        new = _validated(ctx, current, path, sha)
        changes = diff_policies(current.policy, new.policy)
        _record_change(ctx, current, new, changes, trigger, actor)
    except _Refused as exc:
        return _refuse(ctx, current, sha, redact(str(exc)), trigger)
    ctx.replace_policy(new)
    log.info(
        "policy_reloaded",
        trigger=trigger,
        old_sha256=current.sha256,
        new_sha256=sha,
        changes=len(changes),
        systems=sorted(new.providers),
    )
    return ReloadOutcome("changed", sha, diff=render(changes))


def _validated(ctx: AppContext, current: PolicyInForce, path: str, sha: str) -> PolicyInForce:
    """The new snapshot, checked as start-up checks (the open sessions are checked when the
    change is recorded, under the row lock)."""
    try:
        policy = load_policy(path)
        built = build_providers(policy)
        trackers = build_trackers(policy)
    except PolicyError as exc:
        raise _Refused(str(exc)) from None
    needs = [result.detail for result in needs_of_policy(ctx.settings, policy)]
    if needs:
        raise _Refused("; ".join(needs))
    if file_sha256(path) != sha:
        raise _Refused(f"{path} changed while it was read; reload again once it is written")
    return PolicyInForce(policy, _keep_unchanged(current, policy, built), sha, trackers)


def _keep_unchanged(
    current: PolicyInForce, policy: Policy, built: dict[str, Provider]
) -> dict[str, Provider]:
    """The providers to put in force: the old object where the system's provider and config
    are as before (its state and connections go on), the newly built one elsewhere."""
    providers: dict[str, Provider] = {}
    for system_id, provider in built.items():
        old, new = current.policy.system(system_id), policy.system(system_id)
        same = (
            old is not None
            and new is not None
            and (old.provider, old.config) == (new.provider, new.config)
            and system_id in current.providers
        )
        providers[system_id] = current.providers[system_id] if same else provider
    return providers


def _row(db: Session) -> PolicyReload:
    """The policy_reload row, locked for this transaction."""
    row = db.scalars(select(PolicyReload).where(PolicyReload.id == ROW_ID).with_for_update()).one()
    return row


def _record_change(
    ctx: AppContext,
    current: PolicyInForce,
    new: PolicyInForce,
    changes: list[Change],
    trigger: str,
    actor: str,
) -> None:
    """Refuse a policy that strands open sessions; else record `policy_changed`, unless
    another replica already recorded this change."""
    with transaction(ctx.db) as db:
        row = _row(db)
        uncovered = uncovered_sessions(db, new.policy)
        if uncovered:
            raise _Refused(describe_uncovered(ctx.settings.policy_file, uncovered))
        if row.recorded_sha256 == new.sha256:
            return
        row.recorded_sha256, row.refused_sha256 = new.sha256, None
        audit.record(
            db,
            "policy_changed",
            actor,
            old_sha256=current.sha256,
            new_sha256=new.sha256,
            trigger=trigger,
            changes=len(changes),
            wider=sum(1 for change in changes if change.wider),
            diff=render(changes),
        )


def _refuse(
    ctx: AppContext, current: PolicyInForce, sha: str, reason: str, trigger: str
) -> ReloadOutcome:
    """Keep the policy in force and say why: a log line here; the audit event and the approver
    channel's message only from the first replica to refuse this file."""
    log.warning(
        "policy_reload_refused",
        reason=reason,
        sha256=sha,
        trigger=trigger,
        policy_sha256=current.sha256,
    )
    with transaction(ctx.db) as db:
        row = _row(db)
        first = row.refused_sha256 != sha
        if first:
            row.refused_sha256 = sha
            audit.record(
                db, "policy_reload_refused", audit.SYSTEM_ACTOR, sha256=sha, reason=reason,
                trigger=trigger,
            )  # fmt: skip
    if first:
        ctx.notify.policy_reload_refused(refusal_channel(current.policy), sha, reason)
    return ReloadOutcome("refused", sha, reason)


def refusal_channel(policy: Policy) -> str:
    """Where a refusal is told: the default approver channel, else the first system's."""
    return policy.defaults.approver_channel or policy.approver_channel(policy.systems[0])


def record_policy_at_start(ctx: AppContext) -> None:
    """A start with another policy than the last one recorded is a change: record it once."""
    sha = ctx.in_force_now.sha256
    if sha is None:
        return
    with transaction(ctx.db) as db:
        row = _row(db)
        before = row.recorded_sha256
        if before == sha:
            return
        row.recorded_sha256 = sha
        if before is not None:
            audit.record(
                db, "policy_changed", audit.SYSTEM_ACTOR, old_sha256=before, new_sha256=sha,
                trigger=START,
            )  # fmt: skip


def reload_in_background(ctx: AppContext, trigger: str = SIGHUP) -> threading.Thread:
    """Reload on a thread of its own (what a signal handler may start: it must return at
    once); the thread is returned for tests to join."""
    thread = threading.Thread(
        target=reload_policy,
        args=(ctx,),
        kwargs={"trigger": trigger},
        name="policy-reload",
        daemon=True,
    )
    thread.start()
    return thread
