"""The S3 sink (`s3://bucket/prefix`): the audit trail as JSON-lines objects, one per minute of
events (more when a minute holds more than a batch), with boto3's usual credentials.

Rules it keeps:
- A batch holds the events of one minute (by their `at`, UTC), and a minute is sent once it
  has ended, so in the usual case each minute is one object and nothing is rewritten.
- The key is `<prefix>/YYYY/MM/DD/HHMM/<first seq>-<last seq>.jsonl` (seqs zero-padded to 12
  digits, so keys sort in seq order). A batch sent again after a failure or a crash has the same
  seqs (deliver.py), so it overwrites the same object: no duplicate can reach the bucket.
- Each line is one event exactly as exported (`audit.as_dict`), ending in a newline.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.audit_sinks.sinks import Batch, SinkError, json_line
from app.audit_sinks.targets import SinkTarget
from app.models import AuditEvent
from app.text import short

_CLIENT_CONFIG = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3})


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class S3Sink:
    def __init__(self, target: SinkTarget) -> None:
        parts = urllib.parse.urlsplit(target.url)
        self.target = target
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("s3", config=_CLIENT_CONFIG)
        return self._client

    def cut(self, waiting: Sequence[AuditEvent], now: datetime) -> Sequence[AuditEvent]:
        """The waiting events of the first one's minute, once that minute has ended."""
        if not waiting:
            return waiting
        minute = _minute(waiting[0].at)
        if minute + timedelta(minutes=1) > now:
            return []
        count = next((n for n, row in enumerate(waiting) if _minute(row.at) != minute), None)
        return waiting if count is None else waiting[:count]

    def key(self, batch: Batch) -> str:
        minute = datetime.fromisoformat(batch.events[0]["at"])
        name = f"{minute:%Y/%m/%d/%H%M}/{batch.first:012d}-{batch.last:012d}.jsonl"
        return f"{self.prefix}/{name}" if self.prefix else name

    def send(self, batch: Batch) -> None:
        body = "".join(json_line(event) + "\n" for event in batch.events).encode()
        try:
            self.client().put_object(
                Bucket=self.bucket,
                Key=self.key(batch),
                Body=body,
                ContentType="application/x-ndjson",
            )
        except (BotoCoreError, ClientError) as exc:
            raise SinkError(f"S3 put_object to {self.bucket}: {short(exc)}") from None

    def probe(self) -> str:
        try:
            self.client().head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise SinkError(f"S3 bucket {self.bucket}: {short(exc)}") from None
        return f"bucket {self.bucket} reachable"
