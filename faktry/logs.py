"""Logging: plain lines on a terminal, JSON lines (``FAKTRY_LOG_JSON=1``) for collectors.

Every line logged while a job is being worked on carries the job id, its tenant and its
queue (`job_context`), whichever module logs it: the worker middleware sets the context for
each message, and threads a job starts copy it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from faktry.config import Settings

FIELDS = ("job_id", "tenant_id", "queue")
_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "faktry_log_context", default=_EMPTY
)


@contextmanager
def job_context(**fields: str | None) -> Iterator[None]:
    """Add fields to every log line within the block (nested blocks add to the outer)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add fields to the current context until the enclosing `job_context` ends."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})


def current() -> dict[str, str]:
    return dict(_context.get())


def enter(**fields: str | None) -> contextvars.Token[Mapping[str, str]]:
    """Start a context (for middleware hooks that cannot use a ``with`` block)."""
    return _context.set({k: v for k, v in fields.items() if v})


def leave(token: contextvars.Token[Mapping[str, str]]) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the job context onto each record, so formatters and handlers can use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = " ".join(f"{k}={getattr(record, k)}" for k in FIELDS if hasattr(record, k))
        return f"{line} [{tags}]" if tags else line


def configure(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
