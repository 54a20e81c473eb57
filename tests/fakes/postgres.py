"""A real, throwaway PostgreSQL server for the tests that depend on PostgreSQL behaviour.

It runs the installed server binaries (found by `find_pg_bin`) on a free 127.0.0.1 port with
trust authentication and durability switched off, because the data dies with the test run.
Rules it relies on:
- `initdb` and `postgres` refuse to run as root, so as root they run as the `postgres` system
  user (created if missing), and every directory they touch must be reachable by that user;
- `postgres_or_skip` skips when PostgreSQL is absent, except under `CI=true`, where a missing
  or broken server fails the run instead of silently dropping tests;
- the cluster lives in memory (/dev/shm) when there is room there: on this machine's disk a
  CREATE DATABASE (a copy of some 8 MB of files, one for nearly every PostgreSQL test) took
  about half a second, in memory a twentieth of that.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

PG_USER = "postgres"
LOG_TAIL_LINES = 40
COMMAND_TIMEOUT_SECONDS = 120
MEMORY_DIR = Path("/dev/shm")
MEMORY_DIR_ROOM = 2 * 1024**3  # a run's clusters take some hundreds of MB; keep well clear


class PostgresStartError(RuntimeError):
    """The server could not be set up or started; the message carries the log tail."""


def _has_server_binaries(directory: Path) -> bool:
    return (directory / "initdb").is_file() and (directory / "pg_ctl").is_file()


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def find_pg_bin() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
    `/usr/lib/postgresql/*/bin` (Debian/Ubuntu), else wherever PATH finds both."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        bin_dir = Path(result.stdout.strip())
        if result.returncode == 0 and result.stdout.strip() and _has_server_binaries(bin_dir):
            return bin_dir
    debian_dirs = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_server_binaries(d)]
    if debian_dirs:
        return max(debian_dirs, key=_version_key)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _reachable_by_others(path: Path) -> bool:
    """Whether every directory from `/` down to `path` lets other users pass through."""
    return all(os.stat(directory).st_mode & stat.S_IXOTH for directory in (path, *path.parents))


def _ensure_postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    command = ["useradd", "--system", "--user-group", "--no-create-home"]
    command += ["--shell", "/usr/sbin/nologin", PG_USER]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PostgresStartError(f"could not create the {PG_USER} user: {result.stderr.strip()}")
    return pwd.getpwnam(PG_USER)


def _in_memory_dir() -> Path | None:
    """/dev/shm when it is there, writable and has room (MEMORY_DIR_ROOM free), else None."""
    try:
        stats = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    if not os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        return None
    return MEMORY_DIR if stats.f_bavail * stats.f_frsize >= MEMORY_DIR_ROOM else None


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class PostgresServer:
    """One throwaway cluster: `start(base_dir)`, use `.dsn` / `create_database()`, `stop()`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_pg_bin()
        self.port = 0
        self._work_dir: Path | None = None
        self._own_tmp_dir: Path | None = None
        self._as_root = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        if self._work_dir is None:
            raise RuntimeError("the server was never started")
        return self._work_dir / "postgres.log"

    def start(self, base_dir: Path) -> PostgresServer:
        if self.bin_dir is None:
            raise PostgresStartError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        base_dir = Path(base_dir).resolve()
        base_dir.mkdir(parents=True, exist_ok=True)
        in_memory = _in_memory_dir()
        if in_memory is not None or (self._as_root and not _reachable_by_others(base_dir)):
            # In memory if it can be; else a directory the postgres user can enter (pytest's
            # /tmp/pytest-of-root is 0700).
            self._own_tmp_dir = Path(tempfile.mkdtemp(prefix="prod-access-pg-", dir=in_memory))
            self._own_tmp_dir.chmod(0o755)
            base_dir = self._own_tmp_dir
        work_dir = Path(tempfile.mkdtemp(prefix="cluster-", dir=base_dir))
        self._work_dir = work_dir
        socket_dir = work_dir / "sockets"
        socket_dir.mkdir()
        if self._as_root:
            owner = _ensure_postgres_user()
            for directory in (work_dir, socket_dir):
                os.chown(directory, owner.pw_uid, owner.pw_gid)
        data_dir = work_dir / "data"
        self._run(
            "initdb",
            [
                "-D",
                str(data_dir),
                "-A",
                "trust",
                "-U",
                PG_USER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )
        self.port = _free_port()
        server_options = (
            f"-p {self.port} -k {shlex.quote(str(socket_dir))} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        atexit.register(self.stop)  # a crashed test session must not leave a server behind
        self._run(
            "pg_ctl",
            [
                "-D",
                str(data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "60",
                "-o",
                server_options,
                "start",
            ],
        )
        return self

    def stop(self) -> None:
        """Stop the server if it runs (also after a failed start) and remove any directory
        this object created outside `base_dir`. Safe to call twice."""
        atexit.unregister(self.stop)
        try:
            if self._work_dir is not None and (self._work_dir / "data/postmaster.pid").exists():
                data_dir = str(self._work_dir / "data")
                self._run("pg_ctl", ["-D", data_dir, "-m", "immediate", "-w", "stop"])
        finally:
            if self._own_tmp_dir is not None:
                shutil.rmtree(self._own_tmp_dir, ignore_errors=True)
                self._own_tmp_dir = None

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (a copy of database `template`, if given: nobody may be
        connected to that one) and return its DSN."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(statement)
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{quote(name, safe='')}"

    def _run(self, program: str, args: list[str]) -> None:
        assert self.bin_dir is not None and self._work_dir is not None
        command = [str(self.bin_dir / program), *args]
        if self._as_root:
            if shutil.which("runuser"):
                command = ["runuser", "-u", PG_USER, "--", *command]
            else:
                command = ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(command)]
        try:
            # cwd: the server tools resolve their own path from the working directory, which
            # must be one the postgres user can enter.
            result = subprocess.run(
                command,
                cwd=self._work_dir,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresStartError(f"{program} could not run: {error}") from error
        if result.returncode != 0:
            raise PostgresStartError(
                f"{program} failed with exit code {result.returncode}: {shlex.join(command)}\n"
                f"{result.stdout}{result.stderr}\n"
                f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
            )


def postgres_or_skip(base_dir: Path) -> PostgresServer:
    """Start a server under `base_dir`, or skip the test (fail it under CI=true) when
    PostgreSQL is not installed or does not start."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if in_ci:
            pytest.fail(
                "PostgreSQL is required under CI=true but initdb/pg_ctl were not found "
                "(looked at pg_config --bindir, /usr/lib/postgresql/*/bin and PATH)"
            )
        pytest.skip(
            "PostgreSQL server not installed (no initdb/pg_ctl found); "
            "apt-get install postgresql to run these tests"
        )
    server = PostgresServer(bin_dir)
    try:
        return server.start(base_dir)
    except PostgresStartError as error:
        server.stop()
        reason = f"PostgreSQL did not start: {error}"
        if in_ci:
            pytest.fail(reason)
        pytest.skip(reason)
