"""`prod-access policy check`: every problem in a policy file, each with its file, line and key,
without settings, a database or Slack (what a policy repository's CI runs).

A problem is a `Finding`: an *error* (the bot would refuse the file at start, or the policy
cannot work as written) or a *warning* (allowed, but worth a reviewer's second look; fails only
with `--strict`). The checks, in the order they run:
- the YAML itself (a syntax error stops here), and keys written twice in one mapping (YAML
  silently keeps the last one);
- every validation error start-up would report (start-up stops at the first);
- what a reviewer misses (app/policy_review.py), on the parts of the file that are valid: a
  check that needs a broken part waits until that part is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from app.policy import Defaults, Policy, System
from app.policy_lines import key_path, line_of, located_errors

Severity = Literal["error", "warning"]
ERROR: Severity = "error"
WARNING: Severity = "warning"

#: Start-up's messages that the reviewer checks give again, with the line of the duplicate.
_REPORTED_BY_REVIEW = ("duplicate system id", "duplicate role id")
_Part = TypeVar("_Part", bound=BaseModel)
#: Invalid parts are taken out of a system at most this often before it is given up on.
_PRUNE_ROUNDS = 3


@dataclass(frozen=True)
class Finding:
    """One problem: `file:line: key: reason` (a warning's reason starts with `warning:`)."""

    file: str
    line: int | None
    key: str | None
    reason: str
    severity: Severity = ERROR

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" {self.key}:" if self.key else ""
        flag = " warning:" if self.severity == WARNING else ""
        return f"{where}:{key}{flag} {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "key": self.key,
            "reason": self.reason,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class Locator:
    """Turns a key path of the policy file into a Finding at the right line."""

    file: str
    root: yaml.Node | None

    def finding(self, loc: list[Any], reason: str, severity: Severity = ERROR) -> Finding:
        return Finding(
            self.file, line_of(self.root, loc), key_path(loc) or "(top level)", reason, severity
        )


@dataclass(frozen=True)
class PolicyParts:
    """What of a policy file is valid, for the reviewer checks: `policy` holds the valid
    defaults (else the built-in ones) and the valid systems; `systems` pairs each of those with
    its index in the file; `raw` is the file as YAML read it."""

    policy: Policy
    systems: list[tuple[int, System]]
    raw: dict[str, Any]
    path: Path

    def role_loc(self, index: int, role_id: str) -> list[Any]:
        """The key path of the system's role in the file (invalid roles were left out of
        `systems`, so a role's place there may not be its place in the file)."""
        roles = self.raw["systems"][index]["roles"]
        place = next(
            i for i, r in enumerate(roles) if isinstance(r, dict) and r.get("id") == role_id
        )
        return ["systems", index, "roles", place]


def check_policy_file(path: str | Path) -> list[Finding]:
    """Every finding for the file, errors and warnings, in the order of their lines."""
    from app.policy_review import review  # it builds on this module's Finding and Locator

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [Finding(str(path), None, None, f"cannot read policy file: {exc.strerror}")]
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = f"not valid YAML: {getattr(exc, 'problem', exc)}"
        return [Finding(str(path), mark.line + 1 if mark else None, None, reason)]
    at = Locator(str(path), root)
    if not isinstance(data, dict):
        return [at.finding([], "the policy must be a mapping with `systems:`")]
    findings = duplicate_keys(at, root)
    try:
        Policy.model_validate(data)
    except ValidationError as exc:
        findings += [
            Finding(at.file, line, key, reason)
            for line, key, reason in located_errors(root, exc)
            if not reason.startswith(_REPORTED_BY_REVIEW)
        ]
    findings += review(at, valid_parts(path, data))
    return sorted(findings, key=lambda f: (f.file, f.line or 0))


def valid_parts(path: Path, data: dict[str, Any]) -> PolicyParts:
    """The valid defaults and systems of a file that may not be valid as a whole."""
    defaults = _valid(Defaults, data.get("defaults") or {}) or Defaults()
    raw_systems = data.get("systems")
    systems: list[tuple[int, System]] = []
    for index, raw in enumerate(raw_systems if isinstance(raw_systems, list) else []):
        system = _valid(System, raw)
        if system is not None:
            systems.append((index, system))
    policy = Policy.model_construct(defaults=defaults, systems=[s for _, s in systems], users={})
    return PolicyParts(policy, systems, data, path)


def _valid(model: type[_Part], raw: Any) -> _Part | None:
    """The part without its invalid roles and invalid optional keys (their errors are
    reported as start-up reports them), or None when what is left is not valid."""
    for _ in range(_PRUNE_ROUNDS):
        if not isinstance(raw, dict):
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raw = _without(model, raw, [error["loc"] for error in exc.errors()])
    return None


def _without(model: type[BaseModel], raw: dict[str, Any], locs: list[tuple[int | str, ...]]) -> Any:
    fields = model.model_fields
    bad_roles = {loc[1] for loc in locs if len(loc) > 1 and loc[0] == "roles"}
    bad_keys = {loc[0] for loc in locs if loc and loc[0] != "roles"}
    if any(loc == ("roles",) for loc in locs) or any(
        key in fields and fields[key].is_required() for key in bad_keys
    ):
        return None  # a required key, or the roles as a whole: nothing to check here
    pruned = {key: value for key, value in raw.items() if key not in bad_keys}
    if bad_roles and isinstance(raw.get("roles"), list):
        pruned["roles"] = [r for i, r in enumerate(raw["roles"]) if i not in bad_roles]
    return pruned


def duplicate_keys(
    at: Locator, node: yaml.Node | None, loc: list[Any] | None = None
) -> list[Finding]:
    """A key written twice in one mapping: YAML keeps the last one without a word (a second
    `U0NINA:` under `users:` silently replaces the first)."""
    loc = loc or []
    found: list[Finding] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                reason = (
                    f"written twice in one mapping (first at line {seen[key.value]}); "
                    "YAML keeps only the last one"
                )
                found.append(Finding(at.file, line, key_path([*loc, key.value]), reason))
            seen.setdefault(key.value, line)
            found += duplicate_keys(at, value, [*loc, key.value])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += duplicate_keys(at, item, [*loc, index])
    return found


def summary(path: str | Path, findings: list[Finding]) -> str:
    """One line: `policy.yml: OK` or how many errors and warnings."""
    errors = sum(1 for f in findings if f.severity == ERROR)
    warnings = len(findings) - errors
    if not findings:
        return f"{path}: OK"
    return f"{path}: {errors} error(s), {warnings} warning(s)"
