"""What every bench script prints so that anyone can reproduce its figures: the machine first,
then each round, then the spread (min-max) of every headline figure over the rounds.

Rules relied on:
- A figure means little without the machine it came from: cores, CPU model, Python, platform
  and the load average when the run started (a busy machine shows there; a reader can compare
  it with the load average at the end).
- One run is one sample. README quotes the spread of several rounds, never the best round.
- A ratio to a floor (a bare app measured in the same round) is computed within each round, and
  only then spread over the rounds, so noise that hits a whole round cancels out of the ratio.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first "model name" (x86) or "Hardware"/"cpu model" (ARM, MIPS) line, if readable."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
            return value.strip()
    return None


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not every platform has it
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def machine_line() -> str:
    """One line naming the machine, e.g. `machine: 2 cores (AMD EPYC), CPython 3.11.7,
    Linux-6.1-x86_64-with-glibc2.36; load average at start 0.12 / 0.30 / 0.25 (1 / 5 / 15 min)`."""
    model = cpu_model()
    cores = f"{os.cpu_count()} cores" + (f" ({model})" if model else "")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return (
        f"machine: {cores}, {python}, {platform.platform()}; load average at start {load_average()}"
    )


def print_machine() -> None:
    print(machine_line(), flush=True)


def print_load_at_end() -> None:
    print(f"load average at end: {load_average()}", flush=True)


def spread(values: list[float], fmt: str = "{:.1f}", unit: str = "") -> str:
    """`min-max` of the values that are numbers (one value if they agree; `n/a` if none is)."""
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return "n/a"
    low, high = fmt.format(min(numbers)), fmt.format(max(numbers))
    return (low if low == high else f"{low}-{high}") + unit


class Figures:
    """Headline figures by name, one value per round, printed as a table with their spread."""

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self._formats: dict[str, tuple[str, str]] = {}

    def add(self, name: str, value: float, fmt: str = "{:.1f}", unit: str = "") -> None:
        self._values.setdefault(name, []).append(value)
        self._formats[name] = (fmt, unit)

    def values(self, name: str) -> list[float]:
        return list(self._values.get(name, []))

    def spread(self, name: str) -> str:
        fmt, unit = self._formats.get(name, ("{:.1f}", ""))
        return spread(self.values(name), fmt, unit)

    def print_table(self, title: str) -> None:
        rounds = max((len(v) for v in self._values.values()), default=0)
        header = ["figure", *(f"round {n}" for n in range(1, rounds + 1)), "spread (min-max)"]
        rows = []
        for name, values in self._values.items():
            fmt, unit = self._formats[name]
            cells = [fmt.format(v) + unit for v in values]
            cells += [""] * (rounds - len(values))
            rows.append([name, *cells, self.spread(name)])
        print(f"\n{title}")
        print_table(header, rows)


def print_table(header: list[str], rows: list[list[str]], left: int = 1) -> None:
    """Columns padded to their widest cell; the first `left` left-aligned, the others (numbers)
    right-aligned."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    for row in rows:
        print(line(row))
    print(flush=True)
