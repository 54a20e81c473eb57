"""How fast does the bot ack a `/prod-access` quick request, compared with bare Bolt apps that
only ack, measured in the same round?

Slack gives an app 3 seconds to ack a slash command; the bot acks once the request is stored and
posts the approval card after the ack. This script measures what a requester waits for: the time
from sending a signed slash-command POST to having the full HTTP answer, for three targets
(bench/ack_servers.py): the sync floor (Bolt `App` under gunicorn, served as the bot is), the
async floor (Bolt `AsyncApp` under uvicorn) and the bot (`prod-access serve --http`, SQLite).
All talk to a fake Slack Web API in this process, so the bot's post-ack work (the card, the
requester's DM) really happens; the script counts the cards that reached the approver channel.

Method, so that anyone can reproduce the figures (bench/report.py):
- the machine is printed first (cores, CPU model, Python, platform, load average);
- the run is `--rounds` rounds (default 3); in each round, for each load, the targets are loaded
  one after the other in the same order, sync floor, async floor, bot (so the bot's post-ack
  backlog cannot spill into a floor), each with a warm-up (not counted) and then `--requests`
  requests (bench/ack_load.py); then the bot's cards are drained before the next load;
- ratios bot/floor are computed within each round; the summary prints the spread (min-max) over
  the rounds of every figure. Timing is reported, never asserted.
- `--suite` runs the three loads README quotes, in each round: closed loop at `--concurrency`
  (20), one client, and an open loop at `--rate` (default 50 requests/s) with at most
  SUITE_OPEN_SECONDS of requests per target.

Caveat: the client threads and the fake Slack share this process (and its GIL), and all the
processes share the machine's CPUs, so during the bot phase the fake Slack serving the bot's
post-ack calls competes with the load generator. That cost is part of the bot's figures.

    python bench/ack_latency.py --quick          # smoke run: 1 round, 200 requests per target
    python bench/ack_latency.py --suite          # README's figures: 3 loads x 3 rounds
    python bench/ack_latency.py                  # closed loop, 20 clients, 3 rounds
    python bench/ack_latency.py --concurrency 1  # one client
    python bench/ack_latency.py --rate 50        # open loop, 50 requests/s to each target

Exit status: 0 when every request got the expected answer, 1 when some did not, 2 when a
server could not be started.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ack_load import Load, Result, check_bot, check_floor  # noqa: E402
from bench.ack_servers import (  # noqa: E402
    APPROVER_CHANNEL,
    ASYNC_FLOOR,
    BOT,
    SIGNING_SECRET,
    SYNC_FLOOR,
    TARGETS,
    WEBHOOK_SECRET,
    Server,
    StartupError,
    fake_users,
    make_servers,
)
from bench.report import print_load_at_end, print_machine, print_table, spread  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_requests import SlackSender  # noqa: E402
from tests.fakes.webhook_receiver import WebhookReceiver  # noqa: E402

SUITE_RATE = 50.0  # requests/s of the suite's open loop (issue 17's target load)
SUITE_OPEN_SECONDS = 20  # the suite's open loop sends at most this many seconds of requests
P99_TARGET = 1.5  # README's target: bot p99 <= 1.5x the sync floor's p99, in the same round
SHOWN_ERRORS = 10
RATIOS = ((f"{BOT}/{SYNC_FLOOR}", SYNC_FLOOR), (f"{BOT}/{ASYNC_FLOOR}", ASYNC_FLOOR))
COLUMNS = ("p50", "p99", "req/s", "CPU ms/req")


@dataclass(frozen=True)
class LoadSpec:
    label: str
    concurrency: int
    rate: float | None
    requests: int


class Figures:
    """Per load, per row (a target or a ratio), per column: one value per round."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], list[float]] = {}
        self.errors = 0

    def add(self, load: str, row: str, column: str, value: float) -> None:
        self.values.setdefault((load, row, column), []).append(value)

    def get(self, load: str, row: str, column: str) -> list[float]:
        return self.values.get((load, row, column), [])


# --- report --------------------------------------------------------------------------------


def print_round(spec: LoadSpec, results: dict[str, Result]) -> None:
    header = ["target", "answered", "clients", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s"]
    header += ["CPU ms/req", "errors"]
    rows = [
        [
            name,
            str(len(r.latencies)),
            str(spec.concurrency),
            *(f"{r.percentile_ms(p):.1f}" for p in (50, 90, 99, 100)),
            f"{r.rate():.0f}",
            f"{r.cpu_ms():.2f}",
            str(len(r.errors)),
        ]
        for name, r in results.items()
    ]
    print_table(header, rows)


def record_round(figures: Figures, spec: LoadSpec, results: dict[str, Result]) -> None:
    """Each target's p50/p99/req/s, and the bot's ratios to each floor in this same round."""
    for name, result in results.items():
        figures.add(spec.label, name, "p50", result.percentile_ms(50))
        figures.add(spec.label, name, "p99", result.percentile_ms(99))
        figures.add(spec.label, name, "req/s", result.rate())
        figures.add(spec.label, name, "CPU ms/req", result.cpu_ms())
        figures.errors += len(result.errors)
    bot = results[BOT]
    for ratio, floor in RATIOS:
        values = {
            "p50": bot.percentile_ms(50) / results[floor].percentile_ms(50),
            "p99": bot.percentile_ms(99) / results[floor].percentile_ms(99),
            "req/s": bot.rate() / results[floor].rate(),
            "CPU ms/req": bot.cpu_ms() / results[floor].cpu_ms(),
        }
        for column, value in values.items():
            figures.add(spec.label, ratio, column, value)
        print(
            f"{ratio}: p50 {values['p50']:.2f}x, p99 {values['p99']:.2f}x, "
            f"req/s {values['req/s']:.2f}x, server CPU per request {values['CPU ms/req']:.2f}x"
        )


def cell_format(is_ratio: bool, column: str) -> tuple[str, str]:
    """(format, unit) of a summary cell: ratios to 2 places, req/s whole, milliseconds to 1."""
    if is_ratio:
        return "{:.2f}", "x"
    return {"req/s": "{:.0f}", "CPU ms/req": "{:.2f}"}.get(column, "{:.1f}"), ""


def print_summary(figures: Figures, specs: list[LoadSpec], rounds: int) -> None:
    print(
        f"\nsummary: spread (min-max) over {rounds} round(s); each ratio is bot / floor in the "
        "same round, then spread"
    )
    header = ["load", "target", "p50 ms", "p99 ms", "req/s", "CPU ms/req", "cards drained s"]
    rows = []
    for spec in specs:
        for n, row in enumerate((*TARGETS, *(ratio for ratio, _ in RATIOS))):
            is_ratio = row not in TARGETS
            cells = [
                spread(figures.get(spec.label, row, column), *cell_format(is_ratio, column))
                for column in COLUMNS
            ]
            drained = spread(figures.get(spec.label, BOT, "drained")) if row == BOT else ""
            rows.append([spec.label if n == 0 else "", row, *cells, drained])
    print_table(header, rows, left=2)
    for spec in specs:
        ratios = figures.get(spec.label, RATIOS[0][0], "p99")
        met = sum(1 for ratio in ratios if ratio <= P99_TARGET)
        print(
            f"{spec.label}: target bot p99 <= {P99_TARGET}x the {SYNC_FLOOR} p99 met in "
            f"{met} of {len(ratios)} round(s)"
        )


def print_errors(name: str, result: Result) -> None:
    if not result.errors:
        return
    shown = min(SHOWN_ERRORS, len(result.errors))
    print(f"\n{name}: {len(result.errors)} error(s); the first {shown}:")
    for error in result.errors[:SHOWN_ERRORS]:
        print(f"  {error}")


def count_cards(slack: FakeSlack) -> int:
    return sum(
        1
        for args in slack.calls_to("chat.postMessage")
        if args.get("channel") == APPROVER_CHANNEL and "blocks" in args and "thread_ts" not in args
    )


def drain_cards(slack: FakeSlack, expected: int, timeout: float) -> tuple[int, float]:
    """Wait (at most `timeout`) until the fake Slack has `expected` cards; (count, seconds)."""
    started = time.monotonic()
    while True:
        cards = count_cards(slack)
        waited = time.monotonic() - started
        if cards >= expected or waited >= timeout:
            return cards, waited
        time.sleep(0.25)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ack latency of /prod-access: the bot vs bare Bolt apps that only ack "
        "(sync App under gunicorn, AsyncApp under uvicorn), measured in the same rounds."
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--concurrency", type=int, default=20, help="client threads (connections)")
    parser.add_argument("--threads", type=int, default=8, help="WEB_THREADS (gunicorn servers)")
    parser.add_argument("--warmup", type=int, default=100, help="uncounted requests per target")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the spread is over them")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round, 200 requests per target"
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help=f"in each round: closed loop at --concurrency, one client, and an open loop at "
        f"--rate (default {SUITE_RATE:g}/s); one summary table",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: send this many requests per second to each target (the same load for "
        "all) instead of as fast as answers come back",
    )
    parser.add_argument(
        "--drain", type=float, default=30.0, help="max seconds to wait for cards after a load"
    )
    parser.add_argument(
        "--time-limit", type=float, default=1800.0, help="stop sending after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 200, 1
    if min(args.requests, args.concurrency, args.threads, args.rounds) < 1 or args.warmup < 0:
        parser.error("--requests, --concurrency, --threads, --rounds must be >= 1, --warmup >= 0")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    return args


def load_specs(args: argparse.Namespace) -> list[LoadSpec]:
    def clients(n: int) -> str:
        return f"{n} client" + ("" if n == 1 else "s")

    if not args.suite:
        label = f"closed loop, {clients(args.concurrency)}"
        if args.rate:
            label = f"open loop, {args.rate:g} req/s ({clients(args.concurrency)})"
        return [LoadSpec(label, args.concurrency, args.rate, args.requests)]
    rate = args.rate or SUITE_RATE
    return [
        LoadSpec(
            f"closed loop, {clients(args.concurrency)}", args.concurrency, None, args.requests
        ),
        LoadSpec("closed loop, 1 client", 1, None, args.requests),
        LoadSpec(
            f"open loop, {rate:g} req/s ({clients(args.concurrency)})",
            args.concurrency,
            rate,
            min(args.requests, int(rate * SUITE_OPEN_SECONDS)),
        ),
    ]


def measure(
    args: argparse.Namespace, slack: FakeSlack, servers: dict[str, Server], deadline: float
) -> int:
    ready = {name: server.wait_healthy() for name, server in servers.items()}
    specs = load_specs(args)
    print(
        f"targets (healthy after): {SYNC_FLOOR} = Bolt App, gunicorn 1 worker gthread "
        f"{args.threads} threads ({ready[SYNC_FLOOR]:.1f}s); {ASYNC_FLOOR} = Bolt AsyncApp, "
        f"uvicorn 1 worker ({ready[ASYNC_FLOOR]:.1f}s); {BOT} = prod-access serve --http, "
        f"gunicorn 1 worker gthread {args.threads} threads, SQLite ({ready[BOT]:.1f}s)\n"
        f"loads: {'; '.join(f'{s.label}, {args.warmup} warm-up + {s.requests}' for s in specs)} "
        f"requests per target; {args.rounds} round(s); in each, targets in this order: "
        f"{', '.join(TARGETS)}",
        flush=True,
    )
    sender = SlackSender("", SIGNING_SECRET, slack.response_url("bench"))
    serial = itertools.count(1)  # unique tickets and bodies over the whole run
    checks = {SYNC_FLOOR: check_floor, ASYNC_FLOOR: check_floor, BOT: check_bot}
    figures = Figures()
    bot_requests = 0
    for round_no in range(1, args.rounds + 1):
        for spec in specs:
            print(f"\nround {round_no} of {args.rounds}: {spec.label}", flush=True)
            results: dict[str, Result] = {}
            for name, server in servers.items():
                load = Load(server.port, spec.concurrency, sender, checks[name], deadline, serial)
                if args.warmup:
                    print_errors(f"{name} (warm-up)", load.run(args.warmup, spec.rate))
                cpu = server.cpu_seconds()
                results[name] = load.run(spec.requests, spec.rate)
                results[name].cpu = server.cpu_seconds() - cpu
            bot_requests += args.warmup + spec.requests
            cards, drained = drain_cards(slack, bot_requests, args.drain)
            figures.add(spec.label, BOT, "drained", drained)
            print_round(spec, results)
            record_round(figures, spec, results)
            print(
                f"cards posted to {APPROVER_CHANNEL}: {cards} of {bot_requests} bot requests so "
                f"far, drained {drained:.1f}s after the last bot answer"
            )
            for name, result in results.items():
                print_errors(name, result)
    print_summary(figures, specs, args.rounds)
    print_load_at_end()
    for server in servers.values():
        if server.proc is not None and server.proc.poll() is not None:
            print(f"\n{server.name} exited early ({server.proc.returncode}):\n{server.log_tail()}")
    return 1 if figures.errors else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_machine()
    deadline = time.monotonic() + args.time_limit

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)  # unwind through the finally blocks: servers stop, files go

    signal.signal(signal.SIGTERM, on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="prod-access-bench-"))
    try:
        with FakeSlack(users=fake_users()) as slack, WebhookReceiver(WEBHOOK_SECRET) as webhook:
            servers = make_servers(tmp, args.threads, slack.url, webhook.url)
            try:
                for server in servers.values():
                    server.start()
                return measure(args, slack, servers, deadline)
            except StartupError as exc:
                print(f"ack_latency: {exc}", file=sys.stderr)
                return 2
            finally:  # before the fakes stop, so a graceful shutdown still reaches them
                for server in servers.values():
                    server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
