"""The container path: Dockerfile, compose.yaml and .dockerignore say what README promises, and
every command the image runs exists in the installed package and works.

No image is built here (base images come from a registry the tests cannot reach); instead the
files are read as a builder reads them, and the commands they name are run on this machine:
the entry point with its arguments, and the HEALTHCHECK's Python against a real
`prod-access serve --http`, reading its port from `.env` in the working directory as it would
in the image.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from tests.fakes.serve import ServeProcess, free_port, serve_env
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, as a builder reads them: comments dropped, lines
    ending in a backslash joined to the next."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    parsed = []
    for line in logical:
        word, _, rest = line.strip().partition(" ")
        parsed.append((word.upper(), " ".join(rest.split())))
    return parsed


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The steps of each FROM … stage (ARGs before the first FROM are left out)."""
    found: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(step)
    return found


def exec_form(args: str) -> list[str]:
    command = json.loads(args)
    assert isinstance(command, list) and all(isinstance(word, str) for word in command), args
    return command


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(ROOT / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def healthcheck_command(steps: list[tuple[str, str]]) -> list[str]:
    [args] = [args for word, args in steps if word == "HEALTHCHECK"]
    _, _, command = args.partition(" CMD ")
    return exec_form(command)


def test_dockerfile_builds_a_wheel_then_installs_it_into_slim_python_311_as_non_root(
    steps: list[tuple[str, str]],
) -> None:
    build, runtime = stages(steps)
    args = dict(a.split("=", 1) for word, a in steps if word == "ARG" and "=" in a)
    base = args.get("PYTHON_IMAGE")
    assert base == "python:3.11-slim"
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0][1].startswith("${PYTHON_IMAGE}")
    assert any(w == "RUN" and "pip wheel" in a and "--wheel-dir /wheels" in a for w, a in build)
    [install] = [a for w, a in runtime if w == "RUN" and "pip install" in a]
    assert "from=build" in install and "--no-index" in install  # only the wheels built above
    users = [a for w, a in runtime if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    # the user is switched to before anything that runs at start is declared
    names = [w for w, _ in runtime]
    assert names.index("USER") < names.index("ENTRYPOINT")


def test_image_runs_prod_access_serve_http_and_checks_healthz_without_curl(
    steps: list[tuple[str, str]],
) -> None:
    entrypoint = exec_form(next(a for w, a in steps if w == "ENTRYPOINT"))
    cmd = exec_form(next(a for w, a in steps if w == "CMD"))
    assert [*entrypoint, *cmd] == ["prod-access", "serve", "--http"]
    health = healthcheck_command(steps)
    assert health[:2] == ["python", "-c"] and "/healthz" in health[2] and "urllib" in health[2]
    assert not any(re.search(r"\b(curl|wget)\b", a) for w, a in steps if w != "FROM")


def test_the_commands_the_image_runs_exist_in_the_installed_package(
    steps: list[tuple[str, str]],
) -> None:
    [script] = entry_points(group="console_scripts", name="prod-access")
    assert script.value == "app.cli:main"
    command = [*exec_form(next(a for w, a in steps if w == "ENTRYPOINT"))]
    command += exec_form(next(a for w, a in steps if w == "CMD"))
    installed = Path(sys.executable).parent / command[0]
    # `--help` after the image's own arguments: they must parse, and serve must offer --http
    result = subprocess.run(
        [str(installed), *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: prod-access serve") and "--http" in result.stdout


@pytest.fixture
def served(tmp_path: Path, slack: FakeSlack, webhook: WebhookReceiver) -> Iterator[ServeProcess]:
    """`serve --http` whose port is set only in `.env`, as when .env is mounted into /app."""
    env = serve_env(tmp_path, slack, webhook)
    (tmp_path / ".env").write_text(f"PORT={env['PORT']}\n")
    server = ServeProcess(tmp_path, env)
    server.start()
    yield server
    server.stop()


def run_healthcheck(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent)}  # no PORT: it comes from .env, as in /app
    return subprocess.run(
        [sys.executable, *command[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_image_healthcheck_passes_on_a_serving_bot_and_fails_when_nothing_answers(
    steps: list[tuple[str, str]], served: ServeProcess, tmp_path: Path
) -> None:
    command = healthcheck_command(steps)

    assert run_healthcheck(command, served.tmp_path).returncode == 0

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / ".env").write_text(f"PORT={free_port()}\n")
    failed = run_healthcheck(command, stopped)
    assert failed.returncode != 0 and "Connection refused" in failed.stderr


def test_compose_runs_the_bot_next_to_postgres_16_with_health_checks(
    compose: dict, steps: list[tuple[str, str]]
) -> None:
    services = compose["services"]
    assert set(services) == {"bot", "db"}
    db, bot = services["db"], services["bot"]
    assert db["image"] == "postgres:16"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert bot["build"] == "."
    assert bot["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert bot["env_file"] == ".env"
    assert re.fullmatch(
        r"postgresql://prod_access:\$\{POSTGRES_PASSWORD:\?[^}]+\}@db:5432/\w+",
        bot["environment"]["DATABASE_URL"],
    )
    workdir = next(a for w, a in steps if w == "WORKDIR" and a != "/src")
    assert bot["volumes"] == [f"./policy.yml:{workdir}/policy.yml:ro"]
    assert bot["environment"]["POLICY_FILE"] == "policy.yml"
    check = bot["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"] and "/healthz" in check[3]
    assert f":{bot['environment']['PORT']}/healthz" in check[3]
    # published on this machine only: a TLS proxy in front is what Slack talks to
    assert [p.split(":")[0] for p in bot["ports"]] == ["127.0.0.1"]


def test_the_build_context_holds_only_what_the_wheel_is_made_of(
    steps: list[tuple[str, str]],
) -> None:
    """.env (secrets), policy.yml and databases never reach a builder, so never an image."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything is out, then the few files below are let back in
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert admitted == {"pyproject.toml", "README.md", "app"}
    copied = {
        source
        for word, args in steps
        if word == "COPY" and "--from" not in args
        for source in shlex.split(args)[:-1]
    }
    assert copied == admitted
