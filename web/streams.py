"""Server-sent event streams of job and workflow events, held without a web thread each.

The event tables are the truth. Each web process has one `Hub`: a thread that reads the
events committed since its last look (one query per table every ``FAKTRY_STREAM_POLL_SECONDS``,
whatever the number of streams), hands each to the open streams of its tenant (and job),
sends keep-alive comments and closes streams that reached ``FAKTRY_STREAM_MAX_SECONDS``.

A stream opens like this (`open_stream`, in the web thread that took the request):

1. the view checks the caller and the job (another tenant's job is a 404);
2. the events after the client's ``Last-Event-ID`` up to the hub's *horizon* (every event at
   or below it is committed or will never be) are read from the database and written;
3. the stream is *parked* on the hub, which sends it every event after the horizon. If the
   horizon moved while step 2 ran, step 2 runs again from where it stopped, so nothing is
   missed or sent twice.

Under ``faktry web`` (web/server.py) the connection is then taken away from gunicorn: the
answer's head is written here, the socket is handed to the hub's selector and the web thread
goes back to the pool. Under any other server (the test client, TLS terminated by gunicorn)
the answer is the backlog alone and ends: the client reconnects after the ``retry:`` it was
given, with its ``Last-Event-ID``, so a stream never holds a thread while it waits.

Event ids are sequence numbers of the tables: a job stream's id is the job event's id
(``"1234"``), the tenant stream's is ``"<job event id>-<workflow event id>"``. Ids are given
out when a row is inserted, not when it commits, so a later id may be visible before an
earlier one: the horizon stops below the first missing id and waits up to
``FAKTRY_STREAM_GAP_SECONDS`` for it (a rolled-back insert never fills its hole).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.config import Settings
from faktry.db import for_tenant
from faktry.errors import ValidationError
from pipelines.models import JobEvent
from pipelines.workflows.models import WorkflowEvent

log = logging.getLogger("faktry.web.streams")

#: Rows read per table in one look; a backlog larger than this takes several.
BATCH = 1000
#: What a slow reader may leave unsent before its stream is closed (it reconnects and resumes).
MAX_UNSENT_BYTES = 512 * 1024
KEEPALIVE = b": keep-alive\n\n"
#: A hub with no stream stops its thread after this long.
IDLE_STOP_SECONDS = 60.0

TABLES = {"job": JobEvent, "run": WorkflowEvent}


class Cursor(NamedTuple):
    """The last job event and workflow event a stream has passed."""

    job: int = 0
    run: int = 0

    def after(self, table: str, seq: int) -> Cursor:
        return self._replace(**{table: max(getattr(self, table), seq)})

    def wire(self, tenant_wide: bool) -> str:
        return f"{self.job}-{self.run}" if tenant_wide else str(self.job)


def parse_cursor(text: str, *, field_name: str = "Last-Event-ID") -> Cursor:
    """``"1234"`` or ``"1234-56"``, as sent in the ``id:`` of an event."""
    parts = text.strip().split("-")
    if len(parts) > 2 or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise ValidationError("not an event id of this stream", field=field_name)
    numbers = [int(p) for p in parts]
    return Cursor(numbers[0], numbers[1] if len(numbers) == 2 else 0)


@dataclass(frozen=True)
class Event:
    table: str
    seq: int
    tenant_id: str
    #: The job's id (job events) or the run's (workflow events).
    subject: str
    #: The ``data:`` line, the same for every stream (the ``type`` inside says what happened;
    #: no ``event:`` line, so a browser's ``onmessage`` sees every event).
    body: bytes


def _stamp(at: Any) -> str | None:
    return at.isoformat() if at is not None else None


def _event(table: str, row: Any) -> Event:
    if table == "job":
        kind = f"job.{row.kind}"
        data = {"type": kind, "sequence": row.id, "job_id": row.job_id, "status": row.status,
                "attempt": row.attempt, "at": _stamp(row.at), "data": row.data or {}}  # fmt: skip
        subject = row.job_id
    else:
        kind = f"workflow_run.{row.kind}"
        data = {"type": kind, "sequence": row.id, "run_id": row.run_id, "node": row.node, "item": row.item,
                "at": _stamp(row.at), "data": row.data or {}}  # fmt: skip
        subject = row.run_id
    text = json.dumps(data, separators=(",", ":"), default=str)
    return Event(table, row.id, row.tenant_id, subject, f"data: {text}\n\n".encode())


def frame(event: Event, cursor: Cursor, tenant_wide: bool) -> bytes:
    """The event as sent to a stream at ``cursor`` (the position just after it)."""
    return b"id: " + cursor.wire(tenant_wide).encode() + b"\n" + event.body


def read_events(
    session: Session,
    table: str,
    *,
    after: int,
    upto: int | None = None,
    tenant_id: str | None = None,
    job_id: str | None = None,
    limit: int = BATCH,
) -> list[Event]:
    """Events of ``table`` with ``after < id <= upto``, oldest first."""
    model: Any = TABLES[table]
    stmt = select(model).where(model.id > after).order_by(model.id).limit(limit)
    if upto is not None:
        stmt = stmt.where(model.id <= upto)
    if tenant_id is not None:
        stmt = stmt.where(model.tenant_id == tenant_id)
    if job_id is not None:
        stmt = stmt.where(model.job_id == job_id)
    return [_event(table, row) for row in session.scalars(stmt)]


class Feed:
    """One table's committed events, in id order, each once.

    ``horizon`` is the highest id below which nothing more can appear. A row whose id does
    not follow the horizon waits (with every row after it) until the hole fills or has been
    seen for ``gap_seconds``."""

    def __init__(self, table: str, gap_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.gap_seconds = gap_seconds
        self.clock = clock
        self.horizon = 0
        #: id of a row found after a hole -> when it was first seen so.
        self._holes: dict[int, float] = {}

    def start(self, session: Session) -> None:
        """Begin at the newest event written over ``gap_seconds`` ago: a transaction that
        wrote one since may still be committing. Newer ones come in order from there."""
        model: Any = TABLES[self.table]
        settled = clock.now() - timedelta(seconds=self.gap_seconds)
        self.horizon = session.scalar(select(func.max(model.id)).where(model.at <= settled)) or 0
        self._holes.clear()

    def advance(self, session: Session) -> list[Event]:
        rows = read_events(session, self.table, after=self.horizon)
        now = self.clock()
        previous = self.horizon
        for event in rows:  # every hole in sight starts its wait now, not when reached
            if event.seq != previous + 1:
                self._holes.setdefault(event.seq, now)
            previous = event.seq
        ready: list[Event] = []
        for event in rows:
            if event.seq != self.horizon + 1 and now - self._holes[event.seq] < self.gap_seconds:
                break
            ready.append(event)
            self.horizon = event.seq
        self._holes = {seq: t for seq, t in self._holes.items() if seq > self.horizon}
        return ready


# -- streams --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Stream:
    """One client's stream: whose events, where it stands, and where its bytes go."""

    tenant_id: str
    #: The job whose events it wants; None for all of the tenant's jobs and runs.
    job_id: str | None
    cursor: Cursor
    opened: float = field(default_factory=time.monotonic)
    last_write: float = field(default_factory=time.monotonic)
    #: Parked on the hub's selector: the socket, and what it could not take yet.
    sock: socket.socket | None = None
    unsent: bytearray = field(default_factory=bytearray)
    closed: bool = False

    @property
    def tenant_wide(self) -> bool:
        return self.job_id is None

    def wants(self, event: Event) -> bool:
        if event.seq <= getattr(self.cursor, event.table):
            return False
        return self.job_id is None or (event.table == "job" and event.subject == self.job_id)

    def take(self, event: Event) -> bytes:
        self.cursor = self.cursor.after(event.table, event.seq)
        return frame(event, self.cursor, self.tenant_wide)


class Hub:
    """The process's streams and the thread that feeds them. Made once per process, after
    fork, on the first stream (`hub_for`)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.poll_seconds = settings.stream_poll_seconds
        self.keepalive_seconds = settings.stream_keepalive_seconds
        self.max_seconds = settings.stream_max_seconds
        self.capacity = settings.streams_per_process
        self.feeds = {t: Feed(t, settings.stream_gap_seconds) for t in TABLES}
        self._lock = threading.Lock()
        self._horizon: Cursor | None = None
        self._by_tenant: dict[str, set[Stream]] = {}
        self._count = 0
        self._parked: list[Stream] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._closing = False

    # -- from request threads -------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return self._count

    def full(self) -> bool:
        return self.count() >= self.capacity

    def horizon(self) -> Cursor:
        """Every event at or below it is in the database for good; the hub sends parked
        streams what comes after."""
        with self._lock:
            horizon = self._horizon
            if self._thread is None or horizon is None:
                # No stream is parked, so no thread keeps the horizon current: find it now.
                with self.sessions() as session:
                    for feed in self.feeds.values():
                        feed.start(session)
                        feed.advance(session)  # what followed without a hole (no stream to send it to)
                horizon = self._horizon = Cursor(self.feeds["job"].horizon, self.feeds["run"].horizon)
            return horizon

    def park(self, stream: Stream, seen: Cursor) -> bool:
        """Hand ``stream`` (its socket non-blocking) to the hub if it has read everything up
        to the horizon ``seen``; False when the horizon has moved since (read again from there)."""
        with self._lock:
            if self._closing:
                raise ConnectionAbortedError("event streams are closing: the server is stopping")
            if self._horizon != seen:
                return False
            self._by_tenant.setdefault(stream.tenant_id, set()).add(stream)
            self._count += 1
            self._parked.append(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="faktry-streams", daemon=True)
                self._thread.start()
        self._wake()
        return True

    def close(self) -> None:
        """Close every stream and stop the thread (a process shutting down, a test's end)."""
        with self._lock:
            self._closing = True
            for streams in list(self._by_tenant.values()):
                for stream in list(streams):
                    self._close(stream)
            thread = self._thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _wake(self) -> None:
        with suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the hub's thread -----------------------------------------------------------------

    def _run(self) -> None:
        next_look = time.monotonic()
        busy = time.monotonic()
        while True:
            try:
                ready = self._selector.select(max(0.0, next_look - time.monotonic()))
                for key, mask in ready:
                    if key.data is None:
                        with suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        self._on_socket(key.data, mask)
                with self._lock:
                    parked, self._parked = self._parked, []
                for stream in parked:
                    self._watch(stream)
                if time.monotonic() >= next_look:
                    self._look()
                    self._tend()
                    next_look = time.monotonic() + self.poll_seconds
                with self._lock:
                    if self._closing:
                        self._thread = self._horizon = None
                        return
                    if self._count:
                        busy = time.monotonic()
                    elif time.monotonic() - busy >= IDLE_STOP_SECONDS:
                        # Nothing to feed: stop looking (a new stream starts it again).
                        self._thread = self._horizon = None
                        return
            except Exception:
                log.exception("event streams: a look at the event tables failed; trying again")
                next_look = time.monotonic() + self.poll_seconds

    def _watch(self, stream: Stream) -> None:
        """Put a newly parked stream's socket in the selector (the hub's thread only)."""
        if stream.closed or stream.sock is None:
            return
        try:
            self._selector.register(stream.sock, selectors.EVENT_READ, stream)
        except (KeyError, ValueError, OSError):  # closed meanwhile
            with self._lock:
                self._close(stream)
            return
        with self._lock:
            self._flush(stream)

    def _look(self) -> None:
        with self.sessions() as session:
            fresh = [e for feed in self.feeds.values() for e in feed.advance(session)]
        with self._lock:
            self._horizon = Cursor(self.feeds["job"].horizon, self.feeds["run"].horizon)
            for event in fresh:
                for stream in list(self._by_tenant.get(event.tenant_id, ())):
                    if stream.wants(event):
                        self._send(stream, stream.take(event))

    def _tend(self) -> None:
        now = time.monotonic()
        with self._lock:
            for streams in list(self._by_tenant.values()):
                for stream in list(streams):
                    if now - stream.opened >= self.max_seconds:
                        self._close(stream)
                    elif now - stream.last_write >= self.keepalive_seconds:
                        self._send(stream, KEEPALIVE)

    def _send(self, stream: Stream, data: bytes) -> None:
        stream.last_write = time.monotonic()
        stream.unsent += data
        if len(stream.unsent) > MAX_UNSENT_BYTES:
            self._close(stream)
        else:
            self._flush(stream)

    def _flush(self, stream: Stream) -> None:
        sock = stream.sock
        if sock is None or stream.closed:
            return
        try:
            while stream.unsent:
                sent = sock.send(stream.unsent)
                del stream.unsent[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._close(stream)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if stream.unsent else 0)
        with suppress(KeyError, ValueError):
            if self._selector.get_key(sock).events != events:
                self._selector.modify(sock, events, stream)

    def _on_socket(self, stream: Stream, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            with self._lock:
                self._flush(stream)
        if mask & selectors.EVENT_READ and stream.sock is not None:
            # A stream's client sends nothing after its request: readable means it left.
            try:
                left = stream.sock.recv(4096) == b""
            except BlockingIOError:
                left = False
            except OSError:
                left = True
            if left:
                with self._lock:
                    self._close(stream)

    def _close(self, stream: Stream) -> None:
        """With the lock held."""
        self._drop(stream)
        if stream.sock is not None:
            with suppress(KeyError, ValueError):
                self._selector.unregister(stream.sock)
            with suppress(OSError):
                stream.sock.close()

    def _drop(self, stream: Stream) -> None:
        stream.closed = True
        streams = self._by_tenant.get(stream.tenant_id)
        if streams is None or stream not in streams:
            return  # never parked, or dropped already
        self._count -= 1
        streams.discard(stream)
        if not streams:
            del self._by_tenant[stream.tenant_id]


_HUBS_LOCK = threading.Lock()


def hub_for(extensions: dict[str, Any], sessions: sessionmaker[Session], settings: Settings) -> Hub:
    """The app's hub in this process (kept in ``extensions``), made on first use: after
    fork, so each gunicorn worker has its own thread."""
    with _HUBS_LOCK:
        made = extensions.get("faktry.streams")
        if made is None or made[0] != os.getpid():
            made = extensions["faktry.streams"] = (os.getpid(), Hub(sessions, settings))
        hub: Hub = made[1]
        return hub


# -- opening a stream -----------------------------------------------------------------------------


def _backlog(hub: Hub, stream: Stream, seen: Cursor) -> Iterator[bytes]:
    """The stream's events after its cursor up to the horizon ``seen``, a batch at a time;
    the cursor then stands at ``seen`` (or past it: a client may come back from a process
    whose horizon is ahead of this one's)."""
    tables = ["job"] if stream.job_id is not None else list(TABLES)
    with for_tenant(hub.sessions, stream.tenant_id)() as session:
        for table in tables:
            while True:
                batch = read_events(
                    session, table, after=getattr(stream.cursor, table), upto=getattr(seen, table),
                    tenant_id=stream.tenant_id, job_id=stream.job_id,
                )  # fmt: skip
                yield b"".join(stream.take(event) for event in batch)
                if len(batch) < BATCH:
                    break
    for table in tables:
        stream.cursor = stream.cursor.after(table, getattr(seen, table))


def catch_up(
    hub: Hub, stream: Stream, write: Callable[[bytes], Any], before_park: Callable[[], Any] | None = None
) -> None:
    """Write the stream's backlog, then park it on the hub (see the module's docstring)."""
    while True:
        seen = hub.horizon()
        for data in _backlog(hub, stream, seen):
            write(data)
        if before_park is not None:
            before_park()
        if hub.park(stream, seen):
            return


def backlog(hub: Hub, stream: Stream, retry_ms: int) -> Iterator[bytes]:
    """The answer where the connection cannot be handed off: the events up to the horizon,
    then the end (the client reconnects after ``retry_ms`` with the last id it saw)."""
    yield f"retry: {retry_ms}\n\n".encode()
    yield from _backlog(hub, stream, hub.horizon())


# -- handing the connection to the hub ----------------------------------------------------------

#: How long writing an answer's head and backlog may take before the client is given up.
WRITE_TIMEOUT_SECONDS = 10.0
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})


@dataclass
class Opening:
    """A stream the view accepted, waiting for `HandOff` (or the serving thread) to run it."""

    hub: Hub
    stream: Stream
    retry_ms: int

    def body(self) -> Iterator[bytes]:
        return backlog(self.hub, self.stream, self.retry_ms)

    def run_parked(self, sock: socket.socket, status: str, headers: list[tuple[str, str]]) -> None:
        """Write the answer's head and the backlog on ``sock`` (blocking, with a deadline),
        then park the stream on the hub, which owns the socket from then on."""
        lines = [f"HTTP/1.1 {status}"]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
        lines.append("Connection: close")
        pending = bytearray(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        pending += f"retry: {self.retry_ms}\n\n".encode()
        self.stream.sock = sock

        def write(data: bytes) -> None:
            pending.extend(data)
            if len(pending) >= 64 * 1024:
                flush()

        def flush() -> None:
            sock.settimeout(WRITE_TIMEOUT_SECONDS)
            sock.sendall(pending)
            pending.clear()

        def parking() -> None:
            flush()
            sock.setblocking(False)  # the hub's thread never waits on one client

        try:
            catch_up(self.hub, self.stream, write, before_park=parking)
        except Exception:
            with suppress(OSError):
                sock.close()
            raise


class HandOff:
    """WSGI middleware: under ``faktry web``, a stream's connection leaves gunicorn once its
    view has accepted it (see the module's docstring); anything else passes through."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from web.server import hand_off

        answered: list[Any] = []

        def starting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered[:] = [status, headers]
            return start_response(status, headers, exc_info)

        result = self.app(environ, starting)
        opening = environ.get("faktry.stream")
        if not isinstance(opening, Opening) or not answered or not answered[0].startswith("200"):
            return result
        if environ.get("REQUEST_METHOD") != "GET":
            return result  # HEAD: the head alone, from gunicorn
        sock = hand_off(environ.get("gunicorn.socket"))
        if sock is None:
            return result  # the backlog alone, from this thread
        if hasattr(result, "close"):
            result.close()
        try:
            opening.run_parked(sock, answered[0], answered[1])
        except OSError as exc:
            log.info("event stream: the client went away while its backlog was written (%s)", exc)
        return []
