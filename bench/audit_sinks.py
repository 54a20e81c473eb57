"""Audit streaming at scale: how fast, and in how much memory, does a long audit trail reach a
sink? Seeds N chained events (default 100,000) into a fresh SQLite database, then runs the real
delivery (app/audit_sinks/deliver.py) until the sink has them all, under tracemalloc: the peak
traced memory must not grow with N (a batch is 500 events), which is what the figure shows.

Sinks: `hec`, a Splunk-HEC-shaped receiver over real HTTP on 127.0.0.1 that checks the token,
parses every event object and their order and keeps only a count (so what is traced is the
sender, not a receiver hoarding events); `file`, a JSON-lines file in a temporary directory.

Like every bench script (bench/report.py) it prints the machine first, runs `--rounds` rounds
(default 3) and prints each round and the spread (min-max). tracemalloc slows Python down
severalfold: the seconds are those of a traced run.

    python bench/audit_sinks.py                       # 100,000 events to hec and file, 3 rounds
    python bench/audit_sinks.py --sinks file --events 10000 --rounds 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audit_sinks.deliver import deliver_to_all  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from bench.report import Figures, print_load_at_end, print_machine  # noqa: E402
from tests.fakes.audit_trail import seed_events  # noqa: E402
from tests.fakes.local_server import LocalServer, Reply, Request  # noqa: E402

TOKEN = "bench-hec-token-0123"


class CountingHec:
    """Takes HEC batches like tests/fakes/hec_receiver.py, keeping only how many arrived and
    whether their seqs came in order without a gap."""

    def __init__(self) -> None:
        self.server = LocalServer(self.handle)
        self.lock = threading.Lock()
        self.count = 0
        self.in_order = True

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Splunk {TOKEN}":
            return Reply(403, {"text": "Invalid token", "code": 4})
        with self.lock:
            for line in request.body.decode().splitlines():
                seq = json.loads(line)["event"]["seq"]
                self.in_order &= seq == self.count + 1
                self.count = max(self.count, seq)
        return Reply(200, {"text": "Success", "code": 0})


def one_round(sink: str, events: int, directory: Path) -> tuple[float, float, bool]:
    """(seconds, peak traced MB, everything arrived in order) for one sink."""
    url = f"sqlite:///{directory / f'{sink}.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_events(engine, events)
    db = make_sessionmaker(engine)
    receiver = CountingHec()
    if sink == "hec":
        receiver.server.start()
        target = f"http://127.0.0.1:{receiver.server.port}/services/collector/event"
    else:
        target = (directory / "audit.jsonl").as_uri()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        audit_sinks=target,
        audit_sink_token=TOKEN,  # type: ignore[arg-type]
    )
    delivered = 0
    tracemalloc.start()
    started = time.perf_counter()
    while delivered < events:  # each run stops after deliver.RUN_SECONDS; the timer goes on
        [run] = deliver_to_all(settings, db)
        if run.error:
            raise SystemExit(f"delivery failed: {run.error}")
        delivered = run.through or 0
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    receiver.server.stop()
    engine.dispose()
    if sink == "hec":
        ok = receiver.in_order and receiver.count == events
    else:
        with (directory / "audit.jsonl").open() as lines:
            ok = sum(1 for _ in lines) == events
    return elapsed, peak / 1e6, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sinks", default="hec,file")
    args = parser.parse_args()
    print_machine()
    figures = Figures()
    all_ok = True
    for number in range(1, args.rounds + 1):
        for sink in args.sinks.split(","):
            with tempfile.TemporaryDirectory(prefix="bench-audit-sinks-") as directory:
                seconds, peak, ok = one_round(sink, args.events, Path(directory))
            all_ok &= ok
            print(
                f"round {number} {sink}: {args.events:,} events in {seconds:.1f} s "
                f"({args.events / seconds:,.0f}/s traced), peak traced memory {peak:.1f} MB, "
                f"{'all in order' if ok else 'MISSING OR OUT OF ORDER'}",
                flush=True,
            )
            figures.add(f"{sink}: seconds (traced)", seconds)
            figures.add(f"{sink}: peak traced MB", peak)
    figures.print_table(f"{args.events:,} audit events per sink, {args.rounds} round(s)")
    print_load_at_end()
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
