"""The checks that keep the code easy to read run with the tests, so CI runs them too: ruff's
lint and format, and mypy on app/ (configured in pyproject.toml: strict parts on the lifecycle,
the policy and the provider contract)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("args", [("ruff", "check", "."), ("ruff", "format", "--check", ".")])
def test_ruff_is_clean(args: tuple[str, ...]) -> None:
    result = _run(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_app() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
