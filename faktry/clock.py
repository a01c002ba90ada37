"""The one clock. Nothing in faktry reads the time any other way.

``now()`` is timezone-aware UTC. Tests move it with `freeze`, `advance` and `reset`;
a process can be started with an offset through ``FAKTRY_CLOCK_OFFSET`` (seconds),
read once by `configure_from_env` at a composition root.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

_lock = threading.Lock()
_frozen: datetime | None = None
_offset = timedelta(0)


def now() -> datetime:
    with _lock:
        if _frozen is not None:
            return _frozen
        return datetime.now(UTC) + _offset


def monotonic() -> float:
    """Seconds for measuring intervals and timeouts (never moved by tests)."""
    return time.monotonic()


def wall() -> float:
    """Real seconds since the epoch, never moved by tests: for what another party checks
    against its own clock (a signature's timestamp that Stripe's SDK verifies)."""
    return time.time()


def freeze(at: datetime) -> None:
    global _frozen
    if at.tzinfo is None:
        raise ValueError("freeze() takes an aware datetime")
    with _lock:
        _frozen = at.astimezone(UTC)


def advance(delta: timedelta) -> None:
    global _frozen, _offset
    with _lock:
        if _frozen is not None:
            _frozen += delta
        else:
            _offset += delta


def reset() -> None:
    global _frozen, _offset
    with _lock:
        _frozen = None
        _offset = timedelta(0)


def configure_from_env() -> None:
    raw = os.environ.get("FAKTRY_CLOCK_OFFSET")
    if raw:
        advance(timedelta(seconds=float(raw)))


def as_utc(value: datetime) -> datetime:
    """Databases without time zones (SQLite) hand back naive datetimes: they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
