"""Expiry lag: how long after `expires_at` a revoke reaches the provider, when many sessions
expire at once.

Seeds N active sessions (default 10,000) of a webhook system, M of them (default 1,000)
expiring within the same second a few seconds from now, the rest hours later; starts the bot's
real timers (APScheduler, default settings: the sweep runs when the next session falls due, and
every second) in this process; and records at a local webhook receiver, in a process of its own
(the provider is another system), when each revoke arrives (and its Idempotency-Key, to count
duplicates). Prints p50/p99/max lag from `expires_at` to arrival (target: p99 <= 0.3 s), the
earliest arrival (negative: before `expires_at`; never earlier than EXPIRY_REVOKE_AHEAD_SECONDS,
which lets a burst start that much before its end), the CPU time the bot's process spent per
revoke and how many database transactions it ran per revoke.

Like every bench script (bench/report.py) it prints the machine first, runs `--rounds` rounds
(default 3; about 15 s each with the defaults), prints each round and then the spread (min-max)
of every figure. Each round has a database of its own (a new SQLite file, or a new database on
the throwaway server) and a receiver of its own; on `--database-url` the rounds share the
database, so the round number is part of every seeded id.

    python bench/expiry_lag.py                          # SQLite, 10,000 / 1,000
    python bench/expiry_lag.py --sessions 200 --expiring 200    # 200 expiring together
    python bench/expiry_lag.py --database postgres      # a throwaway PostgreSQL server
    python bench/expiry_lag.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    python bench/expiry_lag.py --sweep-workers 16       # SWEEP_WORKERS (default 256)
    python bench/expiry_lag.py --revoke-ahead 0         # EXPIRY_REVOKE_AHEAD_SECONDS (0.5)
    python bench/expiry_lag.py --rounds 1 --sessions 100 --expiring 10 --lead 1   # smoke run

`--database postgres` starts its own server with the tests' helper (tests/fakes/postgres.py,
Debian's `postgresql` package). Two processes sweeping one PostgreSQL: bench/replicas.py.
Only localhost traffic; stops by itself (--time-limit).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, event, insert  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import engine_of, make_engine, upgrade  # noqa: E402
from app.jobs.scheduler import start_scheduler  # noqa: E402
from app.models import AccessRequest, AccessSession, RequestState, SessionState  # noqa: E402
from app.runtime import build_context  # noqa: E402
from bench.report import Figures, print_load_at_end, print_machine  # noqa: E402
from tests.fakes.policy import write_policy  # noqa: E402
from tests.fakes.postgres import PostgresServer  # noqa: E402

SECRET = "bench-webhook-secret-0123456789"


class _BurstServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default listen backlog, 5, refuses a burst of connections


class Receiver:
    """Records (arrival time, Idempotency-Key, action) of every POST; answers 200."""

    def __init__(self, delay: float = 0.0) -> None:
        self.arrivals: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                action = json.loads(body).get("action", "?")
                with receiver.lock:
                    receiver.arrivals.append((now, self.headers["Idempotency-Key"], action))
                payload = b'{"ok": true, "present": false}'
                time.sleep(delay)  # a provider on the network answers in milliseconds, not µs
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _BurstServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def revokes(self) -> list[tuple[float, str, str]]:
        with self.lock:
            return [a for a in self.arrivals if a[2] == "revoke"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve_receiver(delay: float, pipe: Connection) -> None:
    """The receiver's own process: sends its URL, then answers "revokes" with what arrived."""
    receiver = Receiver(delay)
    pipe.send(receiver.url)
    while pipe.recv() == "revokes":
        pipe.send(receiver.revokes())


class ReceiverProcess:
    """A Receiver in another process, so its work does not share the bot's CPU and GIL."""

    def __init__(self, delay: float) -> None:
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve_receiver, args=(delay, child), daemon=True
        )
        self._process.start()
        self.url: str = self._pipe.recv()

    def revokes(self) -> list[tuple[float, str, str]]:
        self._pipe.send("revokes")
        return self._pipe.recv()

    def stop(self) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=5)


def seed(url: str, total: int, expiring: int, expires_at: datetime, round_no: int = 1) -> None:
    """Insert `total` active sessions (and their approved requests), the first `expiring` of
    them expiring at `expires_at`; ids carry the round number, so rounds never collide."""
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    requests, sessions = [], []
    for i in range(total):
        request_id, session_id = f"R-B{round_no}-{i:07d}", f"S-B{round_no}-{i:07d}"
        requests.append(
            dict(id=request_id, requester_id=f"U0B{i}", system_id="orders-api", role_id="read",
                 duration_seconds=1800, ticket=f"PAY-{i}", reason="bench",
                 state=RequestState.approved, created_at=now, decided_by="U0LEAD1",
                 decided_at=now)
        )  # fmt: skip
        sessions.append(
            dict(id=session_id, request_id=request_id, requester_id=f"U0B{i}",
                 system_id="orders-api", role_id="read", grant_name="orders-viewer",
                 identity=f"user{i}@example.com", email=f"user{i}@example.com",
                 state=SessionState.active, created_at=now, granted_at=now,
                 expires_at=expires_at if i < expiring else now + timedelta(hours=6),
                 attempts=0, reminders_sent=0)
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(AccessRequest), requests)
        conn.execute(insert(AccessSession), sessions)
    engine.dispose()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


@contextmanager
def databases(choice: str, url: str | None, tmp: str) -> Iterator[Callable[[int], str]]:
    """A function giving round n its database URL: `url` if given (shared by every round), else
    a new SQLite file, else a new database on a throwaway PostgreSQL server (stopped
    afterwards)."""
    if url:
        yield lambda _n: url
        return
    if choice == "sqlite":
        yield lambda n: f"sqlite:///{tmp}/expiry-{n}.db"
        return
    server = PostgresServer()
    try:
        server.start(Path(tmp))
        yield lambda n: server.create_database(f"bench{n}")
    finally:
        server.stop()


class TransactionCounter:
    """Counts the transactions an engine begins (SQLAlchemy's "begin" event)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(engine, "begin", self._began)

    def _began(self, _connection: object) -> None:
        with self._lock:
            self.count += 1


def describe(url: str) -> str:
    return "SQLite" if url.startswith("sqlite") else "PostgreSQL"


def run_round(args: argparse.Namespace, url: str, tmp: Path, round_no: int) -> dict[str, float]:
    """One burst on a fresh database: seed, run the timers until every revoke arrived (or the
    time limit), and return the round's figures."""
    receiver = ReceiverProcess(args.provider_delay)
    try:
        policy = write_policy(tmp / f"policy-{round_no}.yml", receiver.url)
        settings = Settings(database_url=url, policy_file=str(policy))
        settings.sweep_workers = args.sweep_workers or settings.sweep_workers
        if args.revoke_ahead is not None:
            settings.expiry_revoke_ahead_seconds = args.revoke_ahead
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=args.lead)
        started = time.perf_counter()
        seed(url, args.sessions, args.expiring, expires_at, round_no)
        print(f"\nround {round_no} of {args.rounds}: provider answers after "
              f"{args.provider_delay * 1000:.0f} ms; sweep every "
              f"{settings.expiry_interval_seconds:g} s with {settings.sweep_workers} workers, "
              f"claiming {settings.expiry_lead_seconds:g} s ahead, revokes at most "
              f"{settings.expiry_revoke_ahead_seconds:g} s early; "
              f"seeded {args.sessions} active sessions in {time.perf_counter() - started:.1f} s; "
              f"{args.expiring} expire at {expires_at:%H:%M:%S} UTC ({describe(url)})")  # fmt: skip
        ctx = build_context(settings)
        transactions = TransactionCounter(engine_of(ctx.db))
        scheduler = start_scheduler(ctx)
        cpu = time.process_time()
        deadline = time.monotonic() + args.time_limit
        try:
            while len(receiver.revokes()) < args.expiring and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.5)  # anything arriving twice arrives now
        finally:
            scheduler.shutdown(wait=True)
            engine_of(ctx.db).dispose()  # the next round's database is another one
        cpu = time.process_time() - cpu
        revokes = receiver.revokes()
    finally:
        receiver.stop()
    keys = [key for _, key, _ in revokes]
    lags = [arrived - expires_at.timestamp() for arrived, _, _ in revokes]
    figures = {"received": float(len(revokes)), "missed": float(args.expiring - len(set(keys)))}
    figures["duplicates"] = float(len(keys) - len(set(keys)))
    print(f"revokes received: {len(revokes)} of {args.expiring}, distinct Idempotency-Keys: "
          f"{len(set(keys))}, duplicates: {len(keys) - len(set(keys))}")  # fmt: skip
    if lags:
        figures["lag p50 s"], figures["lag p99 s"] = percentile(lags, 50), percentile(lags, 99)
        figures["lag max s"], figures["earliest s"] = max(lags), min(lags)
        figures["CPU ms per revoke"] = 1000 * cpu / len(revokes)
        figures["transactions per revoke"] = transactions.count / len(revokes)
        print(f"lag from expires_at to revoke at the provider: p50 {figures['lag p50 s']:.2f} s, "
              f"p99 {figures['lag p99 s']:.2f} s, max {figures['lag max s']:.2f} s, earliest "
              f"{figures['earliest s']:+.2f} s  (target p99 <= 0.3 s); per revoke: "
              f"{figures['CPU ms per revoke']:.1f} ms CPU in "
              f"the bot's process, {figures['transactions per revoke']:.2f} database "
              "transactions", flush=True)  # fmt: skip
    return figures


FORMATS = {"transactions per revoke": "{:.2f}", "received": "{:.0f}", "missed": "{:.0f}",
           "duplicates": "{:.0f}", "CPU ms per revoke": "{:.1f}"}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--expiring", type=int, default=1_000)
    parser.add_argument("--lead", type=float, default=5.0, help="seconds until they expire")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=None, help="an existing database instead")
    parser.add_argument("--sweep-workers", type=int, default=None, help="SWEEP_WORKERS")
    parser.add_argument(
        "--revoke-ahead", type=float, default=None, help="EXPIRY_REVOKE_AHEAD_SECONDS"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the spread is over them")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per round")
    parser.add_argument(
        "--provider-delay", type=float, default=0.05, help="seconds the receiver takes to answer"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.expiring < 1 or args.sessions < args.expiring:
        parser.error("--rounds and --expiring must be >= 1, --sessions >= --expiring")
    print_machine()
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: already running"
    os.environ["TEST_WEBHOOK_SECRET"] = SECRET
    figures = Figures()
    with (
        tempfile.TemporaryDirectory() as tmp,
        databases(args.database, args.database_url, tmp) as database_for,
    ):
        for round_no in range(1, args.rounds + 1):
            url = database_for(round_no)
            for name, value in run_round(args, url, Path(tmp), round_no).items():
                figures.add(name, value, FORMATS.get(name, "{:.2f}"))
    figures.print_table(f"spread (min-max) over {args.rounds} round(s); target lag p99 <= 0.3 s")
    print_load_at_end()
    complete = all(v == 0 for v in figures.values("missed"))
    return 0 if complete and len(figures.values("missed")) == args.rounds else 1


if __name__ == "__main__":
    raise SystemExit(main())
