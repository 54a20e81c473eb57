"""`prod-access policy check | explain | diff | reload`: the policy as code, for a policy
repository's CI and its pull requests (the options are in app/cli_parser.py); `reload` is in
app/cli_policy_reload.py.

- `check` reads nothing but the policy files (no settings beyond POLICY_FILE, no database, no
  Slack) and prints every finding (app/policy_check.py) as text, JSON or GitHub Actions
  annotations; exit 1 on an error (or, with --strict, a warning).
- `explain` reads the settings: with SLACK_BOT_TOKEN, user groups are expanded and emails
  looked up through Slack (read-only calls); without, nothing leaves the machine.
- `diff` loads both files as start-up does and prints app/policy_diff.py's text.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.config import Settings, SettingsError, env_value, load_settings
from app.logging import setup_logging
from app.policy import PolicyError, load_policy
from app.policy_check import ERROR, WARNING, Finding, check_policy_file, summary


def run_policy(args: argparse.Namespace) -> int:
    if args.policy_action == "check":
        return check(args.files, args.format, strict=args.strict)
    try:
        if args.policy_action == "explain":
            return explain(args)
        if args.policy_action == "reload":
            from app.cli_policy_reload import reload

            return reload(args.policy)
        return diff(args.old, args.new, exit_code=args.exit_code)
    except (SettingsError, PolicyError) as exc:
        print(f"prod-access: {exc}", file=sys.stderr)
        return 2


def default_policy_file() -> str:
    """POLICY_FILE (the environment, then .env) or its default; no other setting is read."""
    return env_value("POLICY_FILE") or str(Settings.model_fields["policy_file"].default)


def check(files: list[str], fmt: str, *, strict: bool) -> int:
    """Exit 1 when any file has an error (with `strict`, a warning too), else 0."""
    files = files or [default_policy_file()]
    found = {file: check_policy_file(file) for file in files}
    every = [finding for findings in found.values() for finding in findings]
    if fmt == "json":
        print(json.dumps([f.as_dict() for f in every], indent=2))
    else:
        for finding in every:
            print(annotation(finding) if fmt == "github" else str(finding))
        for file, findings in found.items():
            print(summary(file, findings))
    failing = (ERROR, WARNING) if strict else (ERROR,)
    return 1 if any(f.severity in failing for f in every) else 0


def annotation(finding: Finding) -> str:
    """A GitHub Actions workflow command: the finding shows on the pull request's line."""

    def escape(text: str, *, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    props = [f"file={escape(finding.file, prop=True)}"]
    if finding.line is not None:
        props.append(f"line={finding.line}")
    if finding.key:
        props.append(f"title={escape(finding.key, prop=True)}")
    return f"::{finding.severity} {','.join(props)}::{escape(finding.reason)}"


def explain(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when the system or role asked for is not in the policy."""
    from app.policy_explain import ExplainDirectory, explain_context
    from app.policy_explain import explain as explain_lines

    settings = load_settings()
    # A group that cannot be expanded is logged as a warning where the bot runs; here the
    # output itself says so, next to the group.
    setup_logging(settings.log_format, "error")
    policy = load_policy(args.policy or settings.policy_file)
    slack = None
    if settings.slack_bot_token is not None:
        from app.slack import reach
        from app.slack.directory import SlackDirectory

        slack = SlackDirectory(reach.client_for(settings))
    ctx = explain_context(settings, policy, ExplainDirectory(slack, args.email))
    explained = explain_lines(ctx, args.user, args.system, args.role)
    print("\n".join(explained.lines))
    return 0 if explained.known else 1


def diff(old_file: str, new_file: str, *, exit_code: bool) -> int:
    """Exit 0; with `exit_code`, 1 when anything changed (as `git diff --exit-code`)."""
    from app.policy_diff import diff_policies, render

    changes = diff_policies(load_policy(old_file), load_policy(new_file))
    sys.stdout.write(render(changes))
    return 1 if exit_code and changes else 0
