"""Request bodies cannot hold the web tier's threads: each is read against the clock, sized
by its route, and uploads take one of a few slots.

A gunicorn thread reading a body is busy until the body has arrived, so without limits a
few dozen clients trickling a byte a second would leave no thread for anyone else. So:

- **Pace.** Every body is read with an idle timeout (``FAKTRY_BODY_IDLE_SECONDS``: no byte
  for that long) and a minimum rate (once that long has passed, the body must have averaged
  ``FAKTRY_BODY_MIN_BYTES_PER_SECOND``). A body that stalls or crawls is answered
  ``408 body_timeout`` and its connection closed; werkzeug's temp file of a partial upload
  is removed at the end of the request (`web.UploadRequest`).
- **Size.** Only the routes marked `large_body` (uploads) take large bodies; every other
  route refuses a body over ``FAKTRY_MAX_BODY_BYTES`` with ``413 body_too_large`` before
  anything else runs (authentication included): by ``Content-Length`` when sent, by
  counting when chunked. Those small bodies are read whole before the view runs, so no
  view holds a database connection while a client is still sending.
- **Slots.** An upload takes a slot of its tenant, of its client address and of the process
  (`UploadSlots`) before its body is read; over a cap it is answered
  ``429 too_many_uploads`` with ``Retry-After``. A process takes at most half its threads'
  worth of uploads, so health checks and small API calls always find a thread.
- A refused body that was not read (413, 429, 401 on an upload...) closes the connection
  instead of being drained by gunicorn.

How gunicorn (gthread) reads a body: the WSGI ``wsgi.input`` is its ``Body``, whose reader
asks a ``SocketUnreader`` for bytes, which calls ``recv`` on the connection's blocking socket
(``environ["gunicorn.socket"]``) with no timeout. `PacedBodies` puts a `_PacedSocket` in front
of that socket for the length of one request, so every ``recv`` waits only as long as the
pace allows, however the application reads (werkzeug's multipart parser asks for 64 KiB at
a time, which a trickling client would otherwise take hours to fill). Under another server
the pace does not apply (it logs so once); the size limits and the slots still do.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import ClosingIterator

from faktry.config import Settings
from faktry.errors import FaktryError
from web.server import close_after, headers_read

log = logging.getLogger("faktry.web")

F = TypeVar("F", bound=Callable[..., Any])

#: What a ``429 too_many_uploads`` asks the client to wait before trying again.
UPLOAD_RETRY_AFTER_SECONDS = 5


class BodyTimeout(FaktryError):
    code = "body_timeout"
    status = 408


class BodyTooLarge(FaktryError):
    code = "body_too_large"
    status = 413


class TooManyUploads(FaktryError):
    code = "too_many_uploads"
    status = 429

    def __init__(self, message: str) -> None:
        super().__init__(message, details={"retry_after": UPLOAD_RETRY_AFTER_SECONDS})
        self.headers = {"Retry-After": str(UPLOAD_RETRY_AFTER_SECONDS)}


# -- pace: every recv of a body against the clock -----------------------------------------------


class _PacedSocket:
    """The connection's socket as gunicorn's body reader sees it during one request.

    Each ``recv`` may wait at most ``idle`` seconds, and never past the moment the body falls
    below ``min_rate`` bytes a second on average (counted from ``idle`` seconds after the
    request started). Past either, the read side is shut (gunicorn then closes the connection
    instead of draining it) and `BodyTimeout` is raised, now and on every later read."""

    def __init__(
        self, sock: Any, *, idle: float, min_rate: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sock = sock
        self._idle = idle
        self._min_rate = min_rate
        self._clock = clock
        self._started = clock()
        self.received = 0
        self._failed: str | None = None

    def recv(self, size: int, *flags: int) -> bytes:
        if self._failed is not None:
            raise BodyTimeout(self._failed)
        now = self._clock()
        wait = self._idle
        if self._min_rate > 0:
            wait = min(wait, self._started + self._idle + self.received / self._min_rate - now)
        if wait <= 0:
            self._fail(f"the request body arrived slower than {self._min_rate} bytes a second")
        prior = self._sock.gettimeout()
        self._sock.settimeout(wait)
        try:
            data: bytes = self._sock.recv(size, *flags)
        except TimeoutError:
            if wait < self._idle:
                self._fail(f"the request body arrived slower than {self._min_rate} bytes a second")
            self._fail(f"the request body sent nothing for {self._idle:g} seconds")
        finally:
            with suppress(OSError):
                self._sock.settimeout(prior)
        self.received += len(data)
        return data

    def _fail(self, message: str) -> None:
        self._failed = message
        shut_reading(self._sock)
        raise BodyTimeout(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def shut_reading(sock: Any) -> None:
    """Stop reading from a client: what it still sends is not waited for, so gunicorn closes
    the connection after the answer instead of draining the rest of the body."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


def _gunicorn_unreader(environ: dict[str, Any]) -> Any:
    """The object whose ``sock.recv`` this request's body comes from, under gunicorn."""
    sock = environ.get("gunicorn.socket")
    reader = getattr(environ.get("wsgi.input"), "reader", None)
    # Length and until-close bodies hold it; a chunked body's reader holds the request.
    unreader = getattr(reader, "unreader", None) or getattr(getattr(reader, "req", None), "unreader", None)
    if sock is None or getattr(unreader, "sock", None) is not sock:
        return None
    return unreader


def has_body(environ: dict[str, Any]) -> bool:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    length = environ.get("CONTENT_LENGTH", "")
    return bool(length) and length.strip() not in ("", "0")


class _Input:
    """``wsgi.input``, counting what the application read of it: a body left unread when
    the answer is an error is not drained (see `PacedBodies`)."""

    def __init__(self, stream: Any, length: int | None) -> None:
        self._stream = stream
        self._length = length
        self._read = 0
        self._ended = False

    @property
    def complete(self) -> bool:
        return self._ended or (self._length is not None and self._read >= self._length)

    def _count(self, data: bytes, size: int | None) -> bytes:
        self._read += len(data)
        if not data and size != 0:
            self._ended = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._count(self._stream.read(size), size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._count(self._stream.readline(size), size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(hint)
        self._count(b"".join(lines), -1)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class PacedBodies:
    """WSGI middleware: every request body is read at the pace the settings ask (see the
    module's docstring), and a refused body that was not read closes its connection."""

    def __init__(self, app: Callable[..., Iterable[bytes]], settings: Settings) -> None:
        self.app = app
        self.idle = settings.body_idle_seconds
        self.min_rate = settings.body_min_bytes_per_second
        self._warned = False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers_read(environ.get("gunicorn.socket"))
        if not has_body(environ):
            return self.app(environ, start_response)
        unreader = _gunicorn_unreader(environ)
        sock = environ.get("gunicorn.socket")
        if unreader is not None:
            original = unreader.sock
            unreader.sock = _PacedSocket(original, idle=self.idle, min_rate=self.min_rate)
        elif sock is not None and not self._warned:
            self._warned = True
            log.warning("request bodies are read without a pace: gunicorn's body reader was not recognised")
        length = environ.get("CONTENT_LENGTH", "").strip()
        tracked = _Input(environ["wsgi.input"], int(length) if length.isdigit() else None)
        environ["wsgi.input"] = tracked

        def restore() -> None:
            if unreader is not None:
                unreader.sock = original

        def starting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if sock is not None and int(status[:3]) >= 400 and not tracked.complete:
                shut_reading(sock)
                # Said in the answer too: a client's connection pool must not send its next
                # request down this connection, which would be reset.
                close_after(sock)
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, starting)
        except BaseException:
            restore()
            raise
        # Put gunicorn's own socket back before it finishes the request (it drains, with
        # its own deadline, whatever body is left).
        return ClosingIterator(result, [restore])


# -- size: small bodies for every route but uploads ---------------------------------------------


def large_body(view: F) -> F:
    """Mark a view that takes large bodies (up to the upload limit, which it checks itself)
    and reads them as it goes. Every other view gets its body whole, within
    ``FAKTRY_MAX_BODY_BYTES``."""
    view.faktry_large_body = True  # type: ignore[attr-defined]
    return view


def read_small_body() -> None:
    """Before anything else: refuse a body over the small limit, or read it whole now.

    Runs before authentication, so an anonymous caller cannot make faktry do any work for a
    body it may not send; a body that arrives slowly holds no database connection."""
    if not has_body(request.environ):
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "faktry_large_body", False):
        return
    limit = current_app.extensions["faktry"].settings.max_body_bytes
    too_large = BodyTooLarge(f"this endpoint takes a body of at most {limit} bytes", details={"limit": limit})
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    # A chunked body is counted as it arrives: werkzeug stops reading one byte past the limit.
    request.max_content_length = limit + 1
    try:
        data = request.get_data(cache=True, parse_form_data=False)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(data) > limit:
        raise too_large


# -- slots: how many uploads at once ------------------------------------------------------------


class UploadSlots:
    """Uploads under way in this process, counted per tenant, per client address and in
    all; a cap of 0 is no cap. Thread-safe."""

    def __init__(self, *, per_process: int, per_tenant: int, per_address: int) -> None:
        self.caps = {"process": per_process, "tenant": per_tenant, "address": per_address}
        self._lock = threading.Lock()
        self._taken: Counter[tuple[str, str]] = Counter()

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadSlots:
        return cls(
            per_process=max(2, settings.web_threads) // 2,  # `faktry web` runs at least two
            per_tenant=settings.max_uploads_per_tenant,
            per_address=settings.max_uploads_per_address,
        )

    @contextmanager
    def slot(self, tenant_id: str, address: str | None) -> Iterator[None]:
        """Hold a slot for the block, or raise `TooManyUploads` naming the cap that is full."""
        keys = [("process", ""), ("tenant", tenant_id), ("address", address or "")]
        with self._lock:
            for key in keys:
                cap = self.caps[key[0]]
                if cap and self._taken[key] >= cap:
                    whose = {"process": "this server", "tenant": "your account", "address": "your address"}
                    raise TooManyUploads(
                        f"{whose[key[0]]} has {cap} upload(s) under way already; "
                        f"try again in {UPLOAD_RETRY_AFTER_SECONDS} seconds"
                    )
            self._taken.update(keys)
        try:
            yield
        finally:
            with self._lock:
                self._taken.subtract(keys)
                self._taken += Counter()  # drop the zeros

    def taken(self, kind: str, name: str = "") -> int:
        with self._lock:
            return self._taken[(kind, name)]


def install(app: Flask, settings: Settings) -> None:
    """Put the guard in front of ``app``. Call before any other ``before_request``."""
    app.before_request(read_small_body)
    app.wsgi_app = PacedBodies(app.wsgi_app, settings)  # type: ignore[method-assign]
