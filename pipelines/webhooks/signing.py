"""Standard Webhooks signatures.

Every delivery carries ``webhook-id`` (the message id, the same on every retry),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``, keyed by the base64-decoded part of the ``whsec_`` secret after
the prefix. While a rotated secret overlaps its successor the header carries both
signatures, separated by a space, and a receiver accepts either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(msg_id: str, timestamp: int, body: bytes, keys: Iterable[str]) -> dict[str, str]:
    """The three headers of one delivery, signed with every one of ``keys``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, msg_id, timestamp, body) for k in keys),
    }


def verify(secret: str, header: Mapping[str, str], body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """Whether one of the delivery's signatures is ``secret``'s and its timestamp is recent."""
    msg_id, stamp = header.get("webhook-id", ""), header.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    expected = signature(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, s) for s in header.get("webhook-signature", "").split())
