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

An event stream's connection leaves gunicorn once its view has accepted it (`hand_off`): the
streams' hub (web/streams.py) writes to it from then on, from one thread for all the
process's streams, and gunicorn's thread and connection slot are free at once.
"""

from __future__ import annotations

import os
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
        if self in _HANDED_OFF:
            return b""
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

    # A connection handed to the streams' hub is the hub's: what gunicorn still writes (the
    # head of the answer it thinks it sends) goes nowhere, and it cannot shut it down.
    def sendall(self, data: Any, flags: int = 0) -> None:
        if self not in _HANDED_OFF:
            super().sendall(data, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        if self in _HANDED_OFF:
            return len(data)
        return super().send(data, flags)

    def shutdown(self, how: int) -> None:
        if self in _HANDED_OFF:
            raise OSError("this connection was handed off")
        super().shutdown(how)

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

    def handle_request(self, req: Any, conn: Any) -> bool:
        _REQUESTS[conn.sock] = req
        try:
            keepalive: bool = super().handle_request(req, conn)
        finally:
            _REQUESTS.pop(conn.sock, None)
        # A connection handed off (an event stream) is closed here, on gunicorn's side only.
        return keepalive and conn.sock not in _HANDED_OFF

    def enqueue_req(self, conn: Any) -> None:
        if type(conn.sock) is socket.socket:  # not a TLS socket, which reads for itself
            conn.sock.__class__ = _HeaderDeadline
        super().enqueue_req(conn)


#: The request each connection is serving (`close_after`).
_REQUESTS: weakref.WeakKeyDictionary[socket.socket, Any] = weakref.WeakKeyDictionary()


def close_after(sock: Any) -> None:
    """Close the connection ``sock`` after this answer, and say so in it
    (``Connection: close``), so that a client's pool sends nothing more down it. Call before
    the answer's first byte is written; outside `ThreadWorker` it does nothing."""
    req = _REQUESTS.get(sock)
    if req is not None:
        req.must_close = True


#: Connections handed to the event streams' hub (web/streams.py): gunicorn's socket object
#: for them no longer writes, reads or shuts the connection down; closing it closes only
#: gunicorn's descriptor, and the hub's copy keeps the connection open.
_HANDED_OFF: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def hand_off(sock: Any) -> socket.socket | None:
    """Take the connection ``sock`` away from gunicorn: a blocking socket of its own on a
    duplicate of its descriptor, or None when this socket cannot be handed off (not served
    by `ThreadWorker`, or TLS). gunicorn then finishes the request without writing
    anything and closes its own descriptor (`ThreadWorker.handle_request`)."""
    if not isinstance(sock, _HeaderDeadline):
        return None
    _DEADLINES.pop(sock, None)
    taken = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    taken.settimeout(None)
    _HANDED_OFF.add(sock)
    return taken
