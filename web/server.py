"""The worker class `faktry web` runs under gunicorn: gunicorn's threaded worker, with a
deadline on a request's headers.

gunicorn's threaded worker hands a connection to a thread once its first bytes arrive, then
reads the request line and headers from a blocking socket with no timeout: a client sending
its headers a byte at a time would hold that thread as long as it likes, and a few hundred
such clients every thread. Here each request's line and headers must arrive within
``FAKTRY_HEADER_TIMEOUT_SECONDS`` of the moment a thread takes the connection (a deadline
for all of them, not per read); past it the connection is closed. Once the headers are in,
the application's reads of the body go by the body's own pace (web/guard.py) and the answer
is written as before, with no deadline.

A connection's socket is given the class `_HeaderDeadline` (a `socket.socket` with the same
layout), whose ``setblocking(True)``, the call gunicorn makes before reading each request,
starts the deadline; `headers_read` ends it when the application is called.
"""

from __future__ import annotations

import socket
import time
import weakref
from contextlib import suppress
from typing import Any, NoReturn

from gunicorn.http.errors import NoMoreData
from gunicorn.workers import gthread

#: Deadline of the request being read on each socket (none once its headers are in).
_DEADLINES: weakref.WeakKeyDictionary[socket.socket, float] = weakref.WeakKeyDictionary()


class HeaderTimeout(NoMoreData):
    """The headers did not arrive in time; gunicorn closes the connection without an answer
    (as for a client that went away: there is no request to answer yet)."""

    def __str__(self) -> str:
        return "the request's headers did not arrive in time"


class _HeaderDeadline(socket.socket):
    __slots__ = ()
    #: Set by the worker from the settings when it starts.
    seconds = 10.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            _DEADLINES[self] = time.monotonic() + self.seconds
            super().settimeout(self.seconds)
        else:
            _DEADLINES.pop(self, None)
            super().setblocking(False)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        deadline = _DEADLINES.get(self)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                self._cut()
            super().settimeout(left)
            try:
                return super().recv(bufsize, flags)
            except TimeoutError:
                self._cut()
        return super().recv(bufsize, flags)

    def _cut(self) -> NoReturn:
        # Shut both ways first: gunicorn closes a connection it gives up on "gracefully",
        # lingering on its main thread to drain what the client still sends, which a client
        # that trickles would make last. Shut, there is nothing to drain.
        _DEADLINES.pop(self, None)
        with suppress(OSError):
            self.shutdown(socket.SHUT_RDWR)
        raise HeaderTimeout()


def headers_read(sock: Any) -> None:
    """The request's headers are in: no deadline for the rest of it (its body has its own
    pace, and the answer is written without one, as gunicorn does)."""
    if isinstance(sock, _HeaderDeadline):
        _DEADLINES.pop(sock, None)
        socket.socket.settimeout(sock, None)


class ThreadWorker(gthread.ThreadWorker):
    """``--worker-class web.server.ThreadWorker``."""

    def init_process(self) -> None:
        from faktry.config import Settings

        _HeaderDeadline.seconds = Settings.from_env().header_timeout_seconds
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        if type(conn.sock) is socket.socket:  # not a TLS socket, which reads for itself
            conn.sock.__class__ = _HeaderDeadline
        super().enqueue_req(conn)
