"""The load bench/ack_latency.py sends to a target, and what it measures.

`concurrency` client threads, each with one persistent HTTP/1.1 connection (keep-alive), send
v0-signed `/prod-access` slash commands (`orders-api read 15m PAY-<n> bench <n>`, from rotating
requester ids; n is unique over the whole run, so no two bodies are alike and the bot's replay
protection never refuses one). Latency is send-to-full-response per request:

- closed loop (default): each client sends again as soon as it is answered, so latency ≈
  concurrency ÷ throughput and each target gets as much load as it can take;
- open loop (`rate`): request i is due at start + i/rate whatever the answers, and its latency
  counts from when it was due, so a server that falls behind is not flattered.
"""

from __future__ import annotations

import http.client
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.ack_servers import REQUESTERS, SIGNING_SECRET
from tests.fakes.slack_requests import SlackSender, sign

BOT_OK_TEXT = "on its way to the approvers"
REQUEST_TIMEOUT = 10.0  # seconds per HTTP request (Slack itself gives up after 3)

Check = Callable[[int, bytes], str | None]


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests only
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    connections: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # seconds of CPU the server used during the measured requests (if known)

    def cpu_ms(self) -> float:
        """The server's CPU time per answered request, in ms (NaN when not measured)."""
        return self.cpu / len(self.latencies) * 1000 if self.cpu and self.latencies else math.nan

    def percentile_ms(self, pct: float) -> float:
        return percentile(sorted(self.latencies), pct) * 1000

    def rate(self) -> float:
        """Answers per second over the whole run (NaN when nothing was answered)."""
        return len(self.latencies) / self.wall if self.wall > 0 and self.latencies else math.nan


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def check_bot(status: int, body: bytes) -> str | None:
    text = body.decode("utf-8", errors="replace")
    if status != 200 or BOT_OK_TEXT not in text:
        return f"HTTP {status}: {text[:200]!r}"
    return None


def check_floor(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    return None


class Load:
    """`concurrency` threads, one keep-alive connection each, numbering requests from `serial`
    (shared by every load of a run)."""

    def __init__(
        self,
        port: int,
        concurrency: int,
        sender: SlackSender,
        check: Check,
        deadline: float,
        serial: itertools.count[int],
    ) -> None:
        self.port, self.concurrency, self.sender, self.check = port, concurrency, sender, check
        self.deadline, self.serial = deadline, serial
        self._lock = threading.Lock()

    def run(self, count: int, rate: float | None = None) -> Result:
        """Send `count` requests, closed loop or, with `rate`, open loop (see the module)."""
        result = Result()
        remaining = [count]
        first = time.perf_counter() + 0.05

        def take() -> tuple[int, float | None] | None:
            with self._lock:
                if remaining[0] <= 0 or time.monotonic() > self.deadline:
                    return None
                index = count - remaining[0]
                remaining[0] -= 1
                return next(self.serial), (first + index / rate) if rate else None

        def worker() -> None:
            conn: http.client.HTTPConnection | None = None
            while (job := take()) is not None:
                n, due = job
                if due is not None:
                    time.sleep(max(0.0, due - time.perf_counter()))
                if conn is None:
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT
                    )
                    with self._lock:
                        result.connections += 1
                body = self.sender.command_body(
                    f"orders-api read 15m PAY-{n} bench {n}", REQUESTERS[n % len(REQUESTERS)]
                )
                timestamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": timestamp,
                    "X-Slack-Signature": sign(SIGNING_SECRET, timestamp, body),
                }
                started = due if due is not None else time.perf_counter()
                try:
                    conn.request("POST", "/slack/events", body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    elapsed = time.perf_counter() - started
                    conn.close()
                    conn = None
                    with self._lock:
                        result.sent += 1
                        result.errors.append(
                            f"#{n} after {elapsed * 1000:.0f} ms: {type(exc).__name__}: {exc}"
                        )
                    continue
                elapsed = time.perf_counter() - started
                problem = self.check(response.status, data)
                with self._lock:
                    result.sent += 1
                    result.latencies.append(elapsed)
                    if problem:
                        result.errors.append(f"#{n}: {problem}")
                if response.will_close:
                    conn.close()
                    conn = None
            if conn is not None:
                conn.close()

        threads = [
            threading.Thread(target=worker, name=f"load-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, self.deadline - time.monotonic() + 2 * REQUEST_TIMEOUT))
        result.wall = time.perf_counter() - started
        if result.sent < count:
            result.errors.append(f"only {result.sent} of {count} requests sent (time limit)")
        return result
