"""Is a webhook really from its service? Pure checks of the two signatures incident webhooks
carry; nothing here reads a setting or the clock.

- PagerDuty v3 webhooks: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body, keyed
  with the subscription's secret as text>`, several comma-separated while a secret is rotated;
  one matching `v1` signature is enough (PagerDuty developer docs, "Verifying Signatures").
- incident.io signs as Svix / Standard Webhooks do: `webhook-signature: v1,<base64
  HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}">`, several space-separated, keyed
  with the base64 bytes of a `whsec_…` secret; the timestamp (seconds since the epoch) must be
  within TOLERANCE of now, so a captured delivery cannot be played back later.

Every comparison is constant-time (hmac.compare_digest); a malformed header is simply not a
valid signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

#: How far a Standard Webhooks timestamp may be from now, either way (the spec's 5 minutes).
TOLERANCE_SECONDS = 300


def pagerduty_signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Does one of the header's `v1=` signatures sign `body` with `secret`?"""
    if not secret or not header:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    found = False
    for part in header.split(","):
        version, _, signature = part.strip().partition("=")
        if version == "v1" and hmac.compare_digest(signature.lower(), expected):
            found = True  # no early return: every candidate takes as long
    return found


def standard_webhook_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret (the prefix is optional); ValueError if it is not
    base64."""
    try:
        key = base64.b64decode(secret.strip().removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be a whsec_… secret (base64 after the prefix)") from None
    if not key:
        raise ValueError("must be a whsec_… secret (base64 after the prefix)")
    return key


def standard_webhook_ok(
    key: bytes,
    webhook_id: str | None,
    timestamp: str | None,
    body: bytes,
    header: str | None,
    now: float,
) -> bool:
    """Is the delivery signed with `key`, and its timestamp within TOLERANCE_SECONDS of `now`?"""
    if not (key and webhook_id and timestamp and header):
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > TOLERANCE_SECONDS:
        return False
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    found = False
    for part in header.split():
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            found = True
    return found
