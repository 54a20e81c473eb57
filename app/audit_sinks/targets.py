"""AUDIT_SINKS → the sinks the audit trail is streamed to: which kind each URL is, the id its
cursor is kept under, and the form of it that may be shown.

Rules it keeps:
- Kinds: an http(s) URL whose path starts with `/services/collector` is Splunk HEC (`…/event`,
  or `…/raw`); any other https:// URL is a generic endpoint (signed JSON); `s3://bucket/prefix`
  is S3; `file:///absolute/path` a local JSON-lines file.
- Plain http:// only to this machine (127.0.0.1, ::1, localhost): audit events and a token must
  not cross a network unencrypted. Anything else is refused with the URL named.
- A sink's id is the sha256 of its URL without user:password, query string or fragment (where
  secrets may sit), so rotating a token in the URL keeps its cursor; two URLs with one id are
  refused. Only that form (`shown`) ever reaches a log line, a metric or `prod-access check`.
- HEC needs AUDIT_SINK_TOKEN and a generic endpoint AUDIT_SINK_SECRET; s3:// needs boto3.
"""

from __future__ import annotations

import hashlib
import importlib.util
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:  # config imports this module while it validates AUDIT_SINKS
    from app.config import Settings

HEC_PATH = "/services/collector"
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class SinkKind(StrEnum):
    hec = "hec"
    https = "https"
    s3 = "s3"
    file = "file"


@dataclass(frozen=True)
class SinkTarget:
    """One configured sink: its kind, the URL to use (query kept), its id and shown form."""

    kind: SinkKind
    url: str
    id: str
    shown: str

    @property
    def label(self) -> str:
        """What `prod-access check` and the logs call it."""
        return f"{self.kind.value} {self.shown}"


def shown_url(url: str) -> str:
    """Scheme, host, port and path only: no user:password, query string or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_sinks(
    value: str, token: SecretStr | None = None, secret: SecretStr | None = None
) -> list[SinkTarget]:
    """The sinks named in AUDIT_SINKS (empty: none); ValueError naming the first bad one."""
    targets: list[SinkTarget] = []
    for raw in value.split(","):
        url = raw.strip()
        if not url:
            continue
        target = _target(url)
        if target.kind is SinkKind.hec and token is None:
            raise ValueError(f"{target.shown} is Splunk HEC: set AUDIT_SINK_TOKEN")
        if target.kind is SinkKind.https and secret is None:
            raise ValueError(f"{target.shown} is signed with AUDIT_SINK_SECRET: set it")
        if any(other.id == target.id for other in targets):
            raise ValueError(f"{target.shown} is named twice")
        targets.append(target)
    return targets


def configured(settings: Settings) -> list[SinkTarget]:
    """The sinks of validated settings (AUDIT_SINKS was checked when they were read)."""
    return parse_sinks(settings.audit_sinks, settings.audit_sink_token, settings.audit_sink_secret)


def _target(url: str) -> SinkTarget:
    parts = urllib.parse.urlsplit(url)
    shown = shown_url(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"{shown}: no host")
        if scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            raise ValueError(f"{shown}: plain http:// only to 127.0.0.1 or localhost; use https://")
        kind = SinkKind.hec if parts.path.startswith(HEC_PATH) else SinkKind.https
    elif scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"{shown}: no bucket (s3://bucket/prefix)")
        if importlib.util.find_spec("boto3") is None:
            raise ValueError(f"{shown}: S3 needs boto3: pip install 'prod-access[aws]'")
        kind = SinkKind.s3
    elif scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{shown}: a file sink is file:///absolute/path")
        kind = SinkKind.file
    else:
        raise ValueError(f"{shown}: not https://, s3:// or file:// (see README, Audit streaming)")
    digest = hashlib.sha256(shown.encode()).hexdigest()
    return SinkTarget(kind, url, digest, shown)
