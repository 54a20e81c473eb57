"""Work that happens after Slack has its answer: provider calls, card posts, DMs.

Bolt runs each listener in the request's own thread (`process_before_response=True`), so the
HTTP answer leaves as soon as the listener returns; listeners ack, hand the slow part to this
pool, and return. Bolt's default instead runs listeners on a small pool and polls every 10 ms
for the ack, so under load an ack waits behind earlier requests' Slack and provider calls
(bench/ack_latency.py measured p99 4 times a bare app that way).

What must not be lost is committed before the ack (a new request, a decision's intent); what
runs here may be lost in a crash only where a restart or the person can redo it (timers resume
intents; a card that was never posted is posted at start; a lost click can be clicked again).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class AfterAck:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="after-ack")

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._pool.submit(self._run, fn, *args, **kwargs)

    @staticmethod
    def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("after_ack_failed", work=getattr(fn, "__name__", repr(fn)))

    def shutdown(self) -> None:
        """Finish what is queued (graceful stop), then stop the threads."""
        self._pool.shutdown(wait=True)
