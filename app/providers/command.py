"""Command provider: run a team's own executable to grant, revoke or check an access.

`argv` is a list (never a shell: no quoting, no injection through a reason or an identity). The
command gets the session as JSON on stdin (the webhook's body) and these variables:
PROD_ACCESS_ACTION (grant | revoke | check), PROD_ACCESS_SESSION_ID, PROD_ACCESS_IDENTITY,
PROD_ACCESS_GRANT, PROD_ACCESS_SYSTEM, PROD_ACCESS_ROLE. Of the bot's own environment it sees
only PATH and the variables `env` names, so the bot's Slack tokens never reach it. Those are read
where the settings are read (the environment, then `.env`), must be set and not blank, and are
treated as secrets: whatever the command prints, their values never reach a card, a DM, the
audit trail or a log line (app.text).

Exit status 0 is success; for `check`, 0 means the access is present and 1 that it is absent.
Any other status, or running longer than `timeout` (the command and whatever it started are
killed), is a failure whose message carries the end of the output. Output (stdout and stderr
together) of a successful grant or revoke goes into the audit event, truncated.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from app.config import env_value
from app.providers.base import AccessGrant, ProviderConfigError, ProviderError, payload
from app.text import register_secret, short, tail

PRESENT, ABSENT = 0, 1
ERROR_OUTPUT_CHARS = 250  # with its prefix, the message fits the 300 characters errors keep
KILL_GRACE_SECONDS = 5


class CommandConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    argv: list[str] = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0, le=600)
    env: list[str] = Field(default_factory=list)


class CommandProvider:
    Config = CommandConfig

    def __init__(self, config: CommandConfig) -> None:
        self.config = config
        program = config.argv[0]
        found = shutil.which(program) if os.sep not in program else program
        if not found or not (Path(found).is_file() and os.access(found, os.X_OK)):
            raise ProviderConfigError(f"argv[0] {program!r} is not an executable file")
        self._env: dict[str, str] = {}
        for name in config.env:
            value = env_value(name)
            if value is None:
                raise ProviderConfigError(f"environment variable {name} (named in env) is not set")
            register_secret(value)  # the command may print it: never into a card or a log
            self._env[name] = value

    def _run(self, action: str, access: AccessGrant) -> tuple[int, str]:
        env = {name: value for name, value in os.environ.items() if name == "PATH"} | self._env
        env.update(
            PROD_ACCESS_ACTION=action,
            PROD_ACCESS_SESSION_ID=access.session_id,
            PROD_ACCESS_IDENTITY=access.identity,
            PROD_ACCESS_GRANT=access.grant,
            PROD_ACCESS_SYSTEM=access.system,
            PROD_ACCESS_ROLE=access.role,
        )
        try:
            # A session of its own, so a timeout kills everything the command started too.
            process = subprocess.Popen(
                self.config.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProviderError(f"command {self.config.argv[0]!r} could not start: {exc}") from None
        try:
            output, _ = process.communicate(
                json.dumps(payload(action, access)).encode(), timeout=self.config.timeout
            )
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                os.killpg(process.pid, signal.SIGKILL)
            try:
                output, _ = process.communicate(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:  # something left its own session and kept the pipe
                output = b""
            text = output.decode("utf-8", "replace")
            raise ProviderError(
                f"command timed out after {self.config.timeout:g}s (killed)"
                + (f": {short(tail(text, ERROR_OUTPUT_CHARS))}" if text.strip() else "")
            ) from None
        finally:
            if process.poll() is None:
                process.kill()
        return process.returncode, output.decode("utf-8", "replace")

    def _change(self, action: str, access: AccessGrant) -> str | None:
        status, output = self._run(action, access)
        if status != 0:
            raise _failed(action, status, output)
        return tail(output) or None

    def grant(self, access: AccessGrant) -> str | None:
        return self._change("grant", access)

    def revoke(self, access: AccessGrant) -> str | None:
        return self._change("revoke", access)

    def check(self, access: AccessGrant) -> bool:
        status, output = self._run("check", access)
        if status not in (PRESENT, ABSENT):
            raise _failed("check", status, output)
        return status == PRESENT

    def probe(self) -> str:
        """The executable is (still) there and executable; it is not run."""
        program = self.config.argv[0]
        found = shutil.which(program) if os.sep not in program else program
        if not found or not (Path(found).is_file() and os.access(found, os.X_OK)):
            raise ProviderError(f"argv[0] {program!r} is not an executable file", retryable=False)
        return f"{found} is executable (not run)"


def _failed(action: str, status: int, output: str) -> ProviderError:
    how = f"was killed by signal {-status}" if status < 0 else f"exited {status}"
    text = short(tail(output, ERROR_OUTPUT_CHARS))
    return ProviderError(f"command ({action}) {how}" + (f": {text}" if text else ""))
