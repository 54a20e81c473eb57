"""The file sink (`file:///var/log/prod-access/audit.jsonl`): the audit trail appended as JSON
lines, one event per line exactly as exported (`audit.as_dict`), for a log shipper to follow.

Rules it keeps, so the file holds every event once and in order, even after a crash:
- Before appending, the file's last line is read: events with a seq at or below its seq are
  already there and are skipped (a batch sent again after a crash adds nothing twice).
- A last line without its newline is a write cut short by a crash: it is cut off and written
  again whole. A last line that is not an audit event stops delivery with a SinkError (the file
  is someone else's; move it away): mixing two trails would hide gaps.
- Every batch is flushed and fsync'ed before the cursor moves past it.
- A rotated (moved away) file is simply started anew from where the cursor stands.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from app.audit_sinks.sinks import Batch, SinkError, json_line
from app.audit_sinks.targets import SinkTarget
from app.models import AuditEvent

#: How much of the file's end is read to find its last line (an event is far smaller).
TAIL_BYTES = 1 << 20


class FileSink:
    def __init__(self, target: SinkTarget) -> None:
        self.target = target
        self.path = Path(urllib.parse.unquote(urllib.parse.urlsplit(target.url).path))

    def cut(self, waiting: Sequence[AuditEvent], now: datetime) -> Sequence[AuditEvent]:
        return waiting

    def send(self, batch: Batch) -> None:
        try:
            with self.path.open("a+b") as handle:
                written = last_seq_in(handle, self.path)
                lines = [json_line(e) + "\n" for e in batch.events if e["seq"] > written]
                handle.write("".join(lines).encode())
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise SinkError(f"file {self.path}: {exc.strerror or exc}") from None

    def probe(self) -> str:
        directory = self.path.parent
        if not directory.is_dir():
            raise SinkError(f"file {self.path}: the directory {directory} does not exist")
        if not os.access(self.path if self.path.exists() else directory, os.W_OK):
            raise SinkError(f"file {self.path}: not writable by this user")
        size = self.path.stat().st_size if self.path.exists() else 0
        return f"writable ({size} bytes)"


def last_seq_in(handle: BinaryIO, path: Path) -> int:
    """The seq of the file's last complete line (0 for an empty file), after cutting off a line
    a crash left without its newline."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    start = max(0, size - TAIL_BYTES)
    handle.seek(start)
    tail = handle.read()
    if not tail.endswith(b"\n"):
        end = tail.rfind(b"\n")
        if end < 0 and start > 0:
            raise SinkError(f"file {path}: its last line is longer than {TAIL_BYTES} bytes")
        handle.truncate(start + end + 1)
        tail = tail[: end + 1]
        if not tail:
            return 0
    line = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    if len(line) == len(tail) and start > 0:
        raise SinkError(f"file {path}: its last line is longer than {TAIL_BYTES} bytes")
    try:
        seq = json.loads(line)["seq"]
    except (ValueError, KeyError, TypeError):
        raise SinkError(f"file {path}: its last line is not an audit event; move it away") from None
    if not isinstance(seq, int):
        raise SinkError(f"file {path}: its last line is not an audit event; move it away")
    return seq
