"""The benchmark's figures can be reproduced: a tiny run of bench/ack_latency.py names the machine
first, loads the sync floor, the async floor and the bot in every round, and its summary spreads
the ratios that were computed within each round. Measures nothing: 5 requests per target."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RATIO_LINE = re.compile(r"^(bot/(?:sync|async)-floor): p50 ([\d.]+)x, p99 ([\d.]+)x", re.M)


def _spread(values: list[float]) -> str:
    low, high = f"{min(values):.2f}x", f"{max(values):.2f}x"
    return low if low == high else f"{low[:-1]}-{high}"


def test_ack_benchmark_names_the_machine_and_spreads_per_round_ratios_over_rounds() -> None:
    tiny = ["--rounds", "2", "--requests", "5", "--warmup", "0", "--concurrency", "2"]
    run = subprocess.run(
        [sys.executable, "bench/ack_latency.py", *tiny, "--threads", "2", "--drain", "10"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    first = out.splitlines()[0]
    assert first.startswith(f"machine: {os.cpu_count()} cores")
    assert f"Python {sys.version.split()[0]}" in first
    assert "load average at start" in first
    assert "round 1 of 2: closed loop, 2 clients" in out
    assert "round 2 of 2: closed loop, 2 clients" in out
    for target in ("sync-floor", "async-floor", "bot"):
        assert len(re.findall(rf"^{target} +5 +2 ", out, re.M)) == 2, target

    per_round: dict[str, list[tuple[float, float]]] = {}
    for name, p50, p99 in RATIO_LINE.findall(out):
        per_round.setdefault(name, []).append((float(p50), float(p99)))
    summary = out[out.index("summary: spread (min-max) over 2 round(s)") :]
    for name in ("bot/sync-floor", "bot/async-floor"):
        assert len(per_round[name]) == 2, name
        p50s, p99s = [r[0] for r in per_round[name]], [r[1] for r in per_round[name]]
        row = re.search(rf"^ +{name} +(\S+) +(\S+) ", summary, re.M)
        assert row is not None, summary
        assert (row[1], row[2]) == (_spread(p50s), _spread(p99s)), summary
    assert "met in" in summary and "load average at end" in out
