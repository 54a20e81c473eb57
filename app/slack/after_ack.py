"""Work that happens after Slack has its answer: provider calls, card posts, DMs.

Bolt runs each listener in the request's own thread (`process_before_response=True`), so the
HTTP answer leaves as soon as the listener returns; listeners ack, hand the slow part to this
pool, and return. Bolt's default instead runs listeners on a small pool and polls every 10 ms
for the ack, so under load an ack waits behind earlier requests' Slack and provider calls
(bench/ack_latency.py measured p99 4 times a bare app that way).

What must not be lost is committed before the ack (a new request, a decision's intent); what
runs here may be lost in a crash only where a restart or the person can redo it (timers resume
intents; a card that was never posted is posted at start; a lost click can be clicked again).

Each piece of work runs in a copy of the listener's context, so its log lines carry the Slack
request's ids (bound in bolt_app) plus the request and session ids among its arguments; those
ids are added to the listener's own context too (a Slack request's context of its own, see
bolt_app.BoundApp), so the rest of its lines, such as Bolt's answer, name what it was about.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from app.logging import bound, ids_of

log = structlog.get_logger(__name__)


class AfterAck:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="after-ack")

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        ids = ids_of(*args, *kwargs.values())
        known = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(
            **{key: value for key, value in ids.items() if key not in known}
        )
        context = contextvars.copy_context()
        self._pool.submit(context.run, self._run, fn, *args, **kwargs)

    @staticmethod
    def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with bound(**ids_of(*args, *kwargs.values())):
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("after_ack_failed", work=getattr(fn, "__name__", repr(fn)))

    def shutdown(self) -> None:
        """Finish what is queued (graceful stop), then stop the threads."""
        self._pool.shutdown(wait=True)
