"""Checking Svix-style webhook signatures (how Resend signs its webhooks).

Three headers come with each delivery: ``svix-id`` (the message id, the same
on every retry), ``svix-timestamp`` (Unix seconds of this attempt) and
``svix-signature`` (space-separated ``v1,<base64>`` entries, several while a
secret is being rotated). The signed content is ``<id>.<timestamp>.<body>``
and the signature its HMAC-SHA256 under the secret (``whsec_<base64 key>``).

A delivery is refused when a header is missing, the timestamp is further
than ``tolerance`` from now (a replay of a captured request), or no entry
matches (compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from ..errors import ConfigurationError
from .sns import Refused


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret (``ConfigurationError`` if malformed)."""
    text = secret.strip()
    if text.startswith("whsec_"):
        text = text[len("whsec_"):]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("the webhook secret must be whsec_<base64>") from None
    if len(key) < 16:
        raise ConfigurationError("the webhook secret is too short")
    return key


def signature_for(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1`` signature (base64) of one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(key: bytes, headers: Mapping[str, str], body: bytes, *, tolerance: float = 300.0,
           now: float | None = None) -> str:
    """The delivery's ``svix-id`` if the signature and timestamp check out, else ``Refused``."""
    msg_id = headers.get("svix-id") or headers.get("webhook-id")
    stamp = headers.get("svix-timestamp") or headers.get("webhook-timestamp")
    given = headers.get("svix-signature") or headers.get("webhook-signature")
    if not msg_id or not stamp or not given:
        raise Refused("signature headers are missing")
    try:
        sent = int(stamp)
    except ValueError:
        raise Refused("timestamp is not an integer") from None
    now = time.time() if now is None else now
    if abs(now - sent) > tolerance:
        raise Refused("timestamp is outside the tolerance (replayed?)")
    expected = signature_for(key, msg_id, stamp, body)
    for entry in given.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return msg_id
    raise Refused("signature does not match")
