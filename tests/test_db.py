"""The SQLite set-up: writers take one lock (BEGIN IMMEDIATE behind a Python lock), readers
(`reading`) take none, so a read never queues behind a revoke's transaction."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from app.db import make_engine, make_sessionmaker, reading, transaction, upgrade


def test_a_read_does_not_wait_for_an_open_write_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    writing, release = threading.Event(), threading.Event()

    def writer() -> None:
        with transaction(sessions) as db:
            db.execute(text("UPDATE audit_chain_head SET seq = seq"))
            writing.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(5)
    started = time.monotonic()
    with reading(sessions) as db:
        assert db.execute(text("SELECT count(*) FROM access_sessions")).scalar() == 0
    read_took = time.monotonic() - started
    release.set()
    thread.join()
    assert read_took < 0.5, f"the read waited {read_took:.2f}s for the writer"
