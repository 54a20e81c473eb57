"""Work that happens after Slack has its answer: provider calls, card posts, DMs.

Bolt runs each listener in the request's own thread (`process_before_response=True`), so the
HTTP answer leaves as soon as the listener returns; listeners ack, hand the slow part to this
pool, and return. Bolt's default instead runs listeners on a small pool and polls every 10 ms
for the ack, so under load an ack waits behind earlier requests' Slack and provider calls
(bench/ack_latency.py measured p99 4 times a bare app that way).

What must not be lost is committed before the ack (a new request, a decision's intent); what
runs here may be lost in a crash only where a restart or the person can redo it (timers resume
intents; a card that was never posted is posted at start; a lost click can be clicked again).

Acks come first. Work that can wait (posting the card and DM of a new request the approvers
will decide, refreshing a Home tab) is queued with `when_quiet`: it starts once no Slack request
has been answered for QUIET_GAP_SECONDS, or after QUIET_WAIT_SECONDS at the latest, so a burst
of requests is acked at full speed and its cards follow. (A gap, not just "none in progress":
under a burst the count touches zero between one answer and the next request, and work started
there ran in the middle of the burst, bench/ack_latency.py.) Work someone is waiting on (a
modal must open within 3 s of the click, a grant, break-glass or auto-approved access, an end
of access) is queued with the call itself and starts at once.

Each piece of work runs in a copy of the listener's context, so its log lines carry the Slack
request's ids (bound in app/slack/app.py) plus the request and session ids among its arguments;
those ids are added to the listener's own context too (a Slack request's context of its own,
see app.BoundApp), so the rest of its lines, such as Bolt's answer, name what it was about.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import structlog

from app.logging import bound, ids_of

log = structlog.get_logger(__name__)
#: The longest `when_quiet` work waits for a pause in Slack's requests.
QUIET_WAIT_SECONDS = 10.0
#: How long no Slack request must have been in progress for `when_quiet` work to start.
QUIET_GAP_SECONDS = 0.005


class AfterAck:
    def __init__(
        self, threads: int, quiet_wait: float = QUIET_WAIT_SECONDS, gap: float = QUIET_GAP_SECONDS
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="after-ack")
        self._quiet_wait = quiet_wait
        self._gap = gap
        self._quiet = threading.Condition()
        self._answering = 0
        self._last_answer = 0.0  # time.monotonic() when the last answer was given
        self._stopping = False

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run `fn(*args, **kwargs)` on the pool, at once."""
        self._submit(None, fn, args, kwargs)

    def when_quiet(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run `fn(*args, **kwargs)` on the pool once no Slack request has been answered for
        QUIET_GAP_SECONDS (after QUIET_WAIT_SECONDS at the latest)."""
        self._submit(time.monotonic() + self._quiet_wait, fn, args, kwargs)

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Around the answer to one Slack request (the HTTP endpoint): `when_quiet` work waits
        while any is in progress."""
        with self._quiet:
            self._answering += 1
        try:
            yield
        finally:
            with self._quiet:
                self._answering -= 1
                self._last_answer = time.monotonic()
                if not self._answering:
                    self._quiet.notify_all()

    def _submit(
        self,
        deadline: float | None,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        ids = ids_of(*args, *kwargs.values())
        known = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(
            **{key: value for key, value in ids.items() if key not in known}
        )
        context = contextvars.copy_context()
        self._pool.submit(context.run, self._run, deadline, fn, *args, **kwargs)

    def _run(
        self, deadline: float | None, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        if deadline is not None:
            self._wait_for_quiet(deadline)
        with bound(**ids_of(*args, *kwargs.values())):
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("after_ack_failed", work=getattr(fn, "__name__", repr(fn)))

    def _wait_for_quiet(self, deadline: float) -> None:
        with self._quiet:
            while not self._stopping:
                now = time.monotonic()
                if now >= deadline:
                    return
                if not self._answering:
                    quiet_for = now - self._last_answer
                    if quiet_for >= self._gap:
                        return
                    self._quiet.wait(min(self._gap - quiet_for, deadline - now))
                else:
                    self._quiet.wait(deadline - now)

    def shutdown(self) -> None:
        """Finish what is queued (graceful stop), then stop the threads."""
        with self._quiet:  # queued work waits no longer
            self._stopping = True
            self._quiet.notify_all()
        self._pool.shutdown(wait=True)
