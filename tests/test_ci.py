""".ci/run, the CI entry point, and README's test command: they are the same command, character
for character, and .ci/run behaves on a fresh Debian 12 machine as README says.

The machine is played by small fake programs put first on PATH (python3, apt-get, sudo, and the
pip and pytest the fake venv holds), each writing what it was asked to a log: .ci/run itself is
the real script, run by bash from a copy of the repository's README and .ci/run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"


def _readme_test_command() -> str:
    """The one line of the sh block under "Install and run the tests"."""
    text = README.read_text()
    section = text[text.index("**Install and run the tests**") :]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert block, "no sh block after **Install and run the tests**"
    [command] = block[1].splitlines()
    return command


def _ci_test_command() -> str:
    match = re.search(r'^TEST_CMD="(.*)"$', CI_RUN.read_text(), re.M)
    assert match, '.ci/run has no TEST_CMD="…" line'
    return match[1]


def test_ci_runs_exactly_readmes_test_command_which_makes_its_own_venv() -> None:
    command = _readme_test_command()
    assert command == _ci_test_command()
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert command.endswith("pip install -e '.[test]' && pytest")
    development = README.read_text().split("## Development", 1)[1]
    assert command in development.splitlines()


FAKE_PYTHON3 = """\
    #!/usr/bin/env bash
    echo "python3 $*" >> "$FAKE_LOG"
    if [ "${1:-}" = "--version" ]; then echo "Python 3.11.2"; exit 0; fi
    if [ "${1:-} ${2:-}" = "-m venv" ]; then
      if [ ! -e "$FAKE_STATE/python3-venv" ]; then
        echo "The virtual environment was not created successfully because ensurepip is not" >&2
        echo "available. On Debian/Ubuntu systems, you need to install the python3-venv" >&2
        exit 1
      fi
      mkdir -p "$3/bin"
      echo "export PATH=\\"$(cd "$3" && pwd)/bin:\\$PATH\\"" > "$3/bin/activate"
      cp "$FAKE_STATE/pip" "$FAKE_STATE/pytest" "$3/bin/"
      exit 0
    fi
    echo "fake python3: unexpected $*" >&2
    exit 2
"""
FAKE_APT_GET = """\
    #!/usr/bin/env bash
    echo "apt-get $*" >> "$FAKE_LOG"
    for package in "$@"; do
      if [ "$package" = python3-venv ]; then touch "$FAKE_STATE/python3-venv"; fi
    done
"""
FAKE_PIP = """\
    #!/usr/bin/env bash
    echo pip "$@" >> "$FAKE_LOG"
"""
FAKE_PYTEST = """\
    #!/usr/bin/env bash
    echo pytest "$@" >> "$FAKE_LOG"
    exit "$FAKE_PYTEST_STATUS"
"""
FAKE_SUDO = """\
    #!/usr/bin/env bash
    exec "$@"
"""


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, Path]:
    """A checkout (README.md and .ci/run only) and fake programs; nothing from the real PATH
    that the script could install with or run tests with."""
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy2(CI_RUN, checkout / ".ci" / "run")
    shutil.copy2(README, checkout / "README.md")
    bin_dir, state = tmp_path / "bin", tmp_path / "state"  # state: what is installed
    for where, name, script in [
        (bin_dir, "python3", FAKE_PYTHON3),
        (bin_dir, "apt-get", FAKE_APT_GET),
        (bin_dir, "sudo", FAKE_SUDO),
        (state, "pip", FAKE_PIP),  # what the fake python3 puts in a venv it makes
        (state, "pytest", FAKE_PYTEST),
    ]:
        where.mkdir(exist_ok=True)
        (where / name).write_text(textwrap.dedent(script))
        (where / name).chmod(0o755)
    return {"checkout": checkout, "bin": bin_dir, "state": state, "log": tmp_path / "calls.log"}


def _ci_run(machine: dict[str, Path], pytest_status: int = 0) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{machine['bin']}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(machine["checkout"]),
        "CI": "true",
        "FAKE_LOG": str(machine["log"]),
        "FAKE_STATE": str(machine["state"]),
        "FAKE_PYTEST_STATUS": str(pytest_status),
    }
    return subprocess.run(
        ["bash", str(machine["checkout"] / ".ci" / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _calls(machine: dict[str, Path]) -> list[str]:
    calls = machine["log"].read_text().splitlines() if machine["log"].exists() else []
    # the venv probe's temporary directory differs on each run
    return [re.sub(r"-m venv /\S+/venv$", "-m venv PROBE", call) for call in calls]


def test_a_machine_without_python3_venv_gets_it_from_apt_then_runs_readmes_command(
    machine: dict[str, Path],
) -> None:
    result = _ci_run(machine)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = _calls(machine)
    assert calls[:4] == [
        "python3 -m venv PROBE",  # fails: ensurepip is missing
        "apt-get update",
        "apt-get install -y python3-venv",
        "python3 -m venv PROBE",  # works now
    ]
    assert calls[4:] == ["python3 -m venv .venv", "pip install -e .[test]", "pytest"]


def test_a_machine_that_has_everything_runs_no_apt_get(machine: dict[str, Path]) -> None:
    if shutil.which("pg_ctl") is None and not list(Path("/usr/lib/postgresql").glob("*/bin")):
        pytest.skip("no PostgreSQL server installed here: .ci/run would install it")
    (machine["state"] / "python3-venv").touch()
    result = _ci_run(machine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(call.startswith("apt-get") for call in _calls(machine))


@pytest.mark.parametrize(("pytest_status", "ci_status"), [(5, 1), (1, 1), (2, 2)])
def test_ci_fails_when_pytest_fails_or_collects_no_tests(
    machine: dict[str, Path], pytest_status: int, ci_status: int
) -> None:
    (machine["state"] / "python3-venv").touch()
    result = _ci_run(machine, pytest_status)
    assert result.returncode == ci_status
    if pytest_status == 5:
        assert "pytest collected no tests (exit status 5)" in result.stderr


def test_ci_refuses_to_run_a_command_readme_does_not_show(machine: dict[str, Path]) -> None:
    readme = machine["checkout"] / "README.md"
    readme.write_text(readme.read_text().replace("&& pytest", "&& pytest -x"))
    result = _ci_run(machine)
    assert result.returncode == 1
    assert "README.md does not show the test command" in result.stderr
    assert _calls(machine) == []


def test_ci_run_is_executable() -> None:
    assert os.access(CI_RUN, os.X_OK)
