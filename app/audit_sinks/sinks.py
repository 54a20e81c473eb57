"""What every sink is: something that takes one batch of audit events, in seq order, and either
keeps all of it or raises `SinkError`; and how a batch is written.

Rules it relies on:
- A batch is sent again whole after a failure or a crash (same first and last seq), so each
  sink derives its idempotency key from the batch's seqs and hashes: the receiver can drop a
  repeat (see README, Audit streaming).
- Events go out exactly as `audit.as_dict` exports them (seq, at, event, actor, ids, system,
  role, ticket, detail, prev_hash, hash), so a receiver can re-verify the hash chain.
- `cut` lets a sink choose how much of what is waiting makes one batch (S3: one minute).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app import audit
from app.audit_sinks.targets import SinkKind, SinkTarget
from app.config import Settings
from app.models import AuditEvent


class SinkError(Exception):
    """The sink did not take the batch; the message says why (no secret: it is redacted and
    kept in the cursor's last_error)."""


@dataclass(frozen=True)
class Batch:
    """Consecutive audit events, seq `first` to `last`, as exported."""

    events: Sequence[dict[str, Any]]

    @property
    def first(self) -> int:
        return int(self.events[0]["seq"])

    @property
    def last(self) -> int:
        return int(self.events[-1]["seq"])

    @property
    def key(self) -> str:
        """The batch's idempotency key: its seqs and the hash of its last event."""
        return f"{self.first}-{self.last}-{self.events[-1]['hash']}"

    @classmethod
    def of(cls, rows: Sequence[AuditEvent]) -> Batch:
        return cls([audit.as_dict(row) for row in rows])


def json_line(event: dict[str, Any]) -> str:
    """One exported event as compact JSON (UTF-8 text as it is, no ASCII escapes)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


class Sink(Protocol):
    def cut(self, waiting: Sequence[AuditEvent], now: datetime) -> Sequence[AuditEvent]:
        """The leading part of `waiting` (seq order) that makes the next batch; empty: wait."""
        ...

    def send(self, batch: Batch) -> None:
        """Keep the whole batch, or raise SinkError."""
        ...

    def probe(self) -> str:
        """One cheap look that changes nothing: what was found, or SinkError."""
        ...


def build_sink(target: SinkTarget, settings: Settings) -> Sink:
    """The sink for a configured target (imports boto3 only for S3)."""
    if target.kind is SinkKind.hec:
        from app.audit_sinks.http import HecSink

        assert settings.audit_sink_token is not None  # parse_sinks refused HEC without it
        return HecSink(target, settings.audit_sink_token.get_secret_value())
    if target.kind is SinkKind.https:
        from app.audit_sinks.http import SignedJsonSink

        assert settings.audit_sink_secret is not None
        return SignedJsonSink(target, settings.audit_sink_secret.get_secret_value())
    if target.kind is SinkKind.s3:
        from app.audit_sinks.s3 import S3Sink

        return S3Sink(target)
    from app.audit_sinks.file import FileSink

    return FileSink(target)
