"""Scripted faults and a request log, shared by the stand-ins.

A stand-in asks `Faults` on every request whether to stall (`take_hang`) or answer with an
error (`take_fail`); each scripted fault is used up after ``times`` matching requests. Stalls wait
on an event that `Faults.reset` sets, so a reset between tests never leaves a thread sleeping.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Request


@dataclass
class Fault:
    status: int
    remaining: int
    path: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class _Hang:
    seconds: float
    remaining: int
    path: str | None = None


def _matches(prefix: str | None, path: str) -> bool:
    return prefix is None or path.startswith(prefix)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fails: list[Fault] = []
        self._hangs: list[_Hang] = []
        self._release = threading.Event()
        self.outage = False

    def fail(
        self,
        status: int,
        times: int = 1,
        *,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        with self._lock:
            self._fails.append(Fault(status, times, path, dict(headers or {}), body))

    def hang(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        with self._lock:
            self._hangs.append(_Hang(seconds, times, path))

    def take_fail(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._fails:
                if fault.remaining > 0 and _matches(fault.path, path):
                    fault.remaining -= 1
                    return fault
        return None

    def take_hang(self, path: str) -> float:
        with self._lock:
            for hang in self._hangs:
                if hang.remaining > 0 and _matches(hang.path, path):
                    hang.remaining -= 1
                    return hang.seconds
        return 0.0

    def sleep(self, seconds: float) -> None:
        """Stall for ``seconds``, or less if the stand-in is reset meanwhile."""
        if seconds > 0:
            self._release.wait(seconds)

    def reset(self) -> None:
        with self._lock:
            self._fails.clear()
            self._hangs.clear()
            self.outage = False
            self._release.set()
            self._release = threading.Event()


class CallLog:
    """Thread-safe list of recorded requests (dicts, see `record_request`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._items.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _collapse(multi: dict[str, list[Any]]) -> dict[str, Any]:
    return {key: values[0] if len(values) == 1 else values for key, values in multi.items()}


def record_request(request: Request, **extra: Any) -> dict[str, Any]:
    """Describe a request for assertions: method, path, query, headers (lower-case names),
    json (parsed body or None), form (repeated fields become lists) and files
    (field -> {filename, content_type, size}, or a list of those when repeated)."""
    body: Any = None
    if request.is_json:
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            body = None
    files: dict[str, list[dict[str, Any]]] = {}
    for name, storage in request.files.items(multi=True):
        storage.stream.seek(0, 2)
        size = storage.stream.tell()
        storage.stream.seek(0)
        files.setdefault(name, []).append(
            {"filename": storage.filename, "content_type": storage.content_type, "size": size}
        )
    return {
        "method": request.method,
        "path": request.path,
        "query": request.args.to_dict(),
        "headers": {key.lower(): value for key, value in request.headers.items()},
        "json": body,
        "form": _collapse(request.form.to_dict(flat=False)),
        "files": _collapse(files),
        **extra,
    }
