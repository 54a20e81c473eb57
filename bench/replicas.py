"""Replicas: several bot processes sweep one PostgreSQL; is every revoke delivered exactly once,
and how long after `expires_at`?

Starts a throwaway PostgreSQL server (the tests' helper, tests/fakes/postgres.py), starts the
replicas (this script with `--replica`: each builds the bot's context and runs its real timers,
APScheduler with the sweep every second, as `prod-access serve` does), then seeds N active
sessions of a webhook system (default 10,000), M of them (default 1,000) expiring within the
same second a few seconds later. A webhook receiver in this process records every request's
Idempotency-Key and arrival time. Prints delivered (distinct revoke keys), duplicates (must be
0), missed (must be 0), the sessions' states and audit events as the database has them, how
many revokes each replica made and its CPU per revoke, and p50/p99/max lag from `expires_at`
to the revoke's arrival (target p99 <= 0.3 s). Exit status 0 only with no duplicate, nothing
missed and every session ended, in every round.

Like every bench script (bench/report.py) it prints the machine first, runs `--rounds` rounds
(default 3; a round takes about 20 s with the defaults: the replicas start, the burst is seeded
and swept) and prints each round and then the spread (min-max) of every figure. Each round has
a database of its own on the one PostgreSQL server, replicas of their own and a receiver of its
own.

    python bench/replicas.py                       # 2 replicas, 10,000 / 1,000
    python bench/replicas.py --replicas 1          # the same with one process
    python bench/replicas.py --sweep-workers 64    # SWEEP_WORKERS (default 256)
    python bench/replicas.py --rounds 1 --sessions 100 --expiring 10   # smoke run

Only localhost traffic; stops by itself (--time-limit).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, transaction, upgrade  # noqa: E402
from app.models import AccessSession, AuditEvent  # noqa: E402
from bench.expiry_lag import SECRET, Receiver, databases, percentile, seed  # noqa: E402
from bench.report import Figures, print_load_at_end, print_machine  # noqa: E402
from tests.fakes.policy import write_policy  # noqa: E402

REVOKES_MADE = "prod_access_revoke_seconds_count"


def replica(url: str, policy: str, sweep_workers: int | None) -> int:
    """One replica: the bot's timers until stdin closes; then one line: the revokes it made
    and the CPU seconds it spent meanwhile."""
    from app.jobs.scheduler import start_scheduler
    from app.metrics import REGISTRY
    from app.runtime import build_context

    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: already running"
    settings = Settings(database_url=url, policy_file=policy)
    settings.sweep_workers = sweep_workers or settings.sweep_workers
    ctx = build_context(settings)
    scheduler = start_scheduler(ctx)
    started = time.process_time()
    print("ready", flush=True)
    sys.stdin.read()  # the parent closes our stdin when the run is over
    scheduler.shutdown(wait=True)
    cpu = time.process_time() - started
    print(f"{REGISTRY.get_sample_value(REVOKES_MADE) or 0:.0f} {cpu:.3f}")
    return 0


def run_round(args: argparse.Namespace, url: str, tmp: Path, round_no: int) -> dict[str, float]:
    """One burst swept by fresh replicas on a fresh database; the round's figures."""
    receiver = Receiver(args.provider_delay)
    try:
        policy = write_policy(tmp / f"policy-{round_no}.yml", receiver.url)
        upgrade(url)
        command = [sys.executable, __file__, "--replica", "--database-url", url]
        command += ["--policy", str(policy)]
        if args.sweep_workers:
            command += ["--sweep-workers", str(args.sweep_workers)]
        replicas = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(args.replicas)
        ]
        try:
            for process in replicas:
                _wait_until_ready(process)
            defaults = Settings(database_url="postgresql://")
            workers = args.sweep_workers or defaults.sweep_workers
            expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=args.lead)
            seed(url, args.sessions, args.expiring, expires_at, round_no)
            print(f"\nround {round_no} of {args.rounds}: {args.replicas} replica(s) on one "
                  f"PostgreSQL, each sweeping every second with {workers} workers, claiming "
                  f"{defaults.expiry_lead_seconds:g} s ahead, revokes at most "
                  f"{defaults.expiry_revoke_ahead_seconds:g} s early; provider "
                  f"answers after {args.provider_delay * 1000:.0f} ms; seeded {args.sessions} "
                  f"active sessions; {args.expiring} expire at {expires_at:%H:%M:%S} UTC",
                  flush=True)  # fmt: skip
            deadline = time.monotonic() + args.time_limit
            while len(receiver.revokes()) < args.expiring and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2.0)  # anything arriving twice arrives now
        finally:
            outputs = [process.communicate(timeout=60)[0] for process in replicas]
        states, events = _database_view(url)
        revokes = receiver.revokes()
    finally:
        receiver.stop()

    keys = Counter(key for _, key, _ in revokes)
    delivered = len(keys)
    duplicates = sum(keys.values()) - delivered
    missed = args.expiring - delivered
    figures = {"delivered": float(delivered), "duplicates": float(duplicates)}
    figures["missed"] = float(missed)
    figures["not ended"] = float(args.expiring - states.get("ended", 0))
    print(f"delivered: {delivered} of {args.expiring} revokes (distinct Idempotency-Keys), "
          f"duplicates: {duplicates}, missed: {missed}")  # fmt: skip
    print(f"sessions by state: {dict(states)}; audit: {dict(events)}")
    for n, output in enumerate(outputs, 1):
        made, cpu = (float(x) for x in output.split()[-2:])
        per_revoke = f", {cpu / made * 1000:.1f} ms CPU per revoke" if made else ""
        print(f"replica {n}: {made:.0f} revokes, {cpu:.1f} s CPU{per_revoke}")
        figures[f"replica {n} revokes"] = made
        if made:
            figures[f"replica {n} CPU ms per revoke"] = cpu / made * 1000
    first = {key: arrived for arrived, key, _ in sorted(revokes, reverse=True)}
    lags = [arrived - expires_at.timestamp() for arrived in first.values()]
    if lags:
        figures["lag p50 s"], figures["lag p99 s"] = percentile(lags, 50), percentile(lags, 99)
        figures["lag max s"] = max(lags)
        print(f"lag from expires_at to revoke at the provider: p50 {figures['lag p50 s']:.2f} s, "
              f"p99 {figures['lag p99 s']:.2f} s, max {figures['lag max s']:.2f} s  "
              "(target p99 <= 0.3 s)", flush=True)  # fmt: skip
    return figures


FORMATS = {"s": "{:.2f}", "revoke": "{:.1f}"}  # by the figure's last word: lags, CPU per revoke


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--expiring", type=int, default=1_000)
    parser.add_argument("--lead", type=float, default=3.0, help="seconds until they expire")
    parser.add_argument("--sweep-workers", type=int, default=None, help="SWEEP_WORKERS")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the spread is over them")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per round")
    parser.add_argument(
        "--provider-delay", type=float, default=0.05, help="seconds the receiver takes to answer"
    )
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        return replica(args.database_url, args.policy, args.sweep_workers)
    if min(args.rounds, args.replicas, args.expiring) < 1 or args.sessions < args.expiring:
        parser.error("--rounds, --replicas, --expiring must be >= 1, --sessions >= --expiring")

    print_machine()
    os.environ["TEST_WEBHOOK_SECRET"] = SECRET
    figures = Figures()
    with tempfile.TemporaryDirectory() as tmp, databases("postgres", None, tmp) as database_for:
        for round_no in range(1, args.rounds + 1):
            url = database_for(round_no)
            for name, value in run_round(args, url, Path(tmp), round_no).items():
                figures.add(name, value, FORMATS.get(name.split()[-1], "{:.0f}"))
    figures.print_table(
        f"spread (min-max) over {args.rounds} round(s); must be 0: duplicates, missed, not ended"
    )
    print_load_at_end()
    failed = ("duplicates", "missed", "not ended")
    clean = all(v == 0 for name in failed for v in figures.values(name))
    return 0 if clean and len(figures.values("missed")) == args.rounds else 1


def _wait_until_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "ready":
            return
    raise SystemExit(f"a replica exited before it was ready (exit status {process.wait()})")


def _database_view(url: str) -> tuple[Counter[str], Counter[str]]:
    """Sessions by state, and the count of each revoke-related audit event."""
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as db:
            states = Counter(
                {
                    str(state): count
                    for state, count in db.execute(
                        select(AccessSession.state, func.count()).group_by(AccessSession.state)
                    )
                }
            )
            events = Counter(
                {
                    event: count
                    for event, count in db.execute(
                        select(AuditEvent.event, func.count())
                        .where(AuditEvent.event.in_(("expired", "revoked", "revoke_failed")))
                        .group_by(AuditEvent.event)
                    )
                }
            )
    finally:
        engine.dispose()
    return states, events


if __name__ == "__main__":
    raise SystemExit(main())
