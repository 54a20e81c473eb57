"""Audit export at scale: `prod-access audit export` of a long trail, in how much memory? Seeds N
chained events (default 100,000) into a fresh SQLite database, then runs the real command
(app.cli.main, in this process) under tracemalloc and prints the size of the CSV, the time and
the peak traced memory; the test (tests/test_audit.py) shows that memory does not grow with N.

Like every bench script (bench/report.py) it prints the machine first, runs `--rounds` rounds
(default 3) and prints each round and the spread (min-max). tracemalloc slows Python down
severalfold: the seconds are those of a traced run.

    python bench/audit_export.py                       # 100,000 events, 3 rounds
    python bench/audit_export.py --events 10000 --rounds 1   # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.cli import main as cli  # noqa: E402
from app.db import make_engine, upgrade  # noqa: E402
from bench.report import Figures, print_load_at_end, print_machine  # noqa: E402
from tests.fakes.audit_trail import seed_events  # noqa: E402


def one_round(events: int, directory: Path) -> tuple[float, float, float, int]:
    """(seconds, peak traced MB, CSV MB, rows written) for one export."""
    url = f"sqlite:///{directory / 'trail.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_events(engine, events)
    engine.dispose()
    out = directory / "audit.csv"  # the command says where it wrote; the figures follow
    os.environ["DATABASE_URL"] = url
    tracemalloc.start()
    started = time.perf_counter()
    try:
        status = cli(
            ["audit", "export", "--since", "2026-09-01", "--format", "csv", "-o", str(out)]
        )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        del os.environ["DATABASE_URL"]
    if status != 0:
        raise SystemExit(f"audit export exited {status}")
    with out.open() as lines:
        rows = sum(1 for _ in lines) - 1  # the header
    return elapsed, peak / 1e6, out.stat().st_size / 1e6, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_machine()
    figures = Figures()
    all_ok = True
    for number in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="bench-audit-export-") as directory:
            seconds, peak, size, rows = one_round(args.events, Path(directory))
        all_ok &= rows == args.events
        print(
            f"round {number}: {rows:,} events, {size:.1f} MB of CSV in {seconds:.1f} s (traced), "
            f"peak traced memory {peak:.1f} MB",
            flush=True,
        )
        figures.add("seconds (traced)", seconds)
        figures.add("peak traced MB", peak)
        figures.add("CSV MB", size)
    figures.print_table(f"audit export of {args.events:,} events, {args.rounds} round(s)")
    print_load_at_end()
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
