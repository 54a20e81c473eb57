"""Group commit: the writes that Slack requests make before their ack, committed together.

Every Slack request writes before it is acknowledged (its replay key, a new request and its
audit event), and nothing is acknowledged that is not committed. Committed one by one, each
write pays for a transaction of its own: a BEGIN, the SQLite write lock (or PostgreSQL's lock on
the audit chain's head), reading and writing the chain's head, a COMMIT. Under a burst most of
the time went there (bench/profile_ack.py), and the requests queued for the lock one by one.

`GroupCommit.write(fn)` hands `fn(db)` to one writer thread and waits for its commit. The writer
takes every write waiting when it is free, runs them one after the other in one transaction and
commits once; then each caller gets its own result. So a burst of requests costs a transaction
per batch, not per request, and a lone request waits for nothing but its own.

Rules relied on:
- `fn` only reads and writes the database through `db` (no provider call, no message), and
  never reads back a row it inserted with `db.insert_values` (or `insert_row`, `audit.record`):
  those rows are inserted a table at a time, in one executemany each, just before the commit.
  It may run twice: when a batch fails (one write breaks a constraint, the database drops the
  connection) it is rolled back and every write in it is run again in a transaction of its
  own, so one bad write fails its own caller only.
- `fn` runs in a copy of its caller's context: the policy the request pinned (and so the policy
  hash its audit event records) and its log ids go with it.
- Each write's result is returned, or its exception raised, in the caller only after the
  commit (or the rollback) of the transaction that held it.
- Before `start()` and after `stop()`, and in the writer thread itself, `write` runs `fn` in a
  transaction of its own in the calling thread: the CLI, the tests and the timers need no
  writer.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.db import inserts_together, transaction

T = TypeVar("T")
log = structlog.get_logger(__name__)

#: The most writes one transaction takes; more wait for the next one.
MAX_BATCH = 64


class _Write(Generic[T]):
    __slots__ = ("context", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Session], T]) -> None:
        self.fn = fn
        self.context = contextvars.copy_context()
        # released by the writer when the result is in: a bare lock, not an Event (whose
        # set() is Python code run by the writer, the one thread every request waits for)
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self, db: Session) -> None:
        self.result = self.context.run(self.fn, db)


class GroupCommit:
    def __init__(self, factory: sessionmaker[Session], max_batch: int = MAX_BATCH) -> None:
        self._factory = factory
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Write[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False

    def start(self) -> None:
        """Start the writer thread (after a fork: in the process that serves)."""
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop the thread; later writes run in their callers."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._running = False
        self._queue.put(None)
        thread.join()

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(db)` in a transaction, with others queued at the same time, and return its
        result once that transaction has committed (see the module's rules)."""
        thread = self._thread
        if not self._running or thread is None or thread is threading.current_thread():
            with transaction(self._factory) as db:
                return fn(db)
        item = _Write(fn)
        self._queue.put(item)
        item.done.acquire()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch: list[_Write[Any]] = [first]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._commit(batch)
        # what was queued after the stop's marker, before `write` saw it: run it too
        while True:
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                self._commit([left])

    def _commit(self, batch: list[_Write[Any]]) -> None:
        try:
            with transaction(self._factory) as db, inserts_together(db):
                for item in batch:  # the rows of one table go in one executemany, at the end
                    item.run(db)
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.release()
                return
            log.warning("group_commit_batch_failed", writes=len(batch), error=type(exc).__name__)
            for item in batch:  # each again, alone: one bad write fails its caller only
                self._commit([item])
            return
        for item in batch:
            item.done.release()
