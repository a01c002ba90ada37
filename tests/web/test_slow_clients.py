"""Slow clients cannot starve the web tier (web/guard.py).

First the pieces on their own: the paced socket over a socket pair, and the upload slots.
Then the real thing: ``faktry web``'s gunicorn on a free port, with thirty-two uploads from
eight tenants on eight loopback addresses trickling their bodies, while health checks,
another tenant's calls and the OpenAPI document must still be answered at once; a body that
stalls, or crawls below the minimum rate, gets its 408 within the (shortened) idle timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from faktry.cli import web_command
from faktry.config import Settings
from tests.platform import Platform, tenant_key, web_on_postgres
from web.guard import BodyTimeout, TooManyUploads, UploadSlots, _PacedSocket

#: The server's idle timeout and minimum rate, shortened for the test.
IDLE = 1.5
#: The server's deadline on a request's headers, shortened for the test.
HEADERS = 1.5
#: Well past the header deadline: a kept-alive connection left idle longer than the deadline
#: (and shorter than this) is reused, never raced by its own expiry.
KEEPALIVE = 10
MIN_RATE = 50
THREADS = 8  # so a process takes at most 4 uploads at once
#: What "answered at once" means here: today's failure was no answer for over 12 s.
PROMPT = 2.0
BOUNDARY = "slowclientboundary"


# -- the pieces ----------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_a_paced_socket_passes_a_body_that_keeps_coming(pair):
    server, client = pair
    paced = _PacedSocket(server, idle=0.5, min_rate=10)
    client.sendall(b"hello")
    assert paced.recv(100) == b"hello"
    assert server.gettimeout() is None  # the socket's own timeout is left as it was


def test_a_paced_socket_refuses_a_body_that_stalls_and_stops_reading(pair):
    server, client = pair
    paced = _PacedSocket(server, idle=0.3, min_rate=0)
    started = time.monotonic()
    with pytest.raises(BodyTimeout, match=r"sent nothing for 0\.3 seconds"):
        paced.recv(100)
    assert 0.25 < time.monotonic() - started < 2
    started = time.monotonic()
    with pytest.raises(BodyTimeout):
        paced.recv(100)  # once refused, always refused, without waiting again
    assert time.monotonic() - started < 0.1
    server.settimeout(1)
    assert server.recv(100) == b""  # the read side is shut: nothing more is waited for
    with pytest.raises(BrokenPipeError):
        client.sendall(b"late")


def test_a_paced_socket_refuses_a_body_slower_than_the_minimum_rate(pair):
    server, client = pair
    now = [0.0]
    paced = _PacedSocket(server, idle=1.0, min_rate=100, clock=lambda: now[0])
    client.sendall(b"x" * 50)
    assert paced.recv(100) == b"x" * 50
    # After the idle allowance, 50 bytes carry the body until 1.0 + 50/100 = 1.5 s.
    now[0] = 1.4
    client.sendall(b"y")
    assert paced.recv(100) == b"y"
    now[0] = 1.6
    with pytest.raises(BodyTimeout, match="slower than 100 bytes a second") as refused:
        paced.recv(100)
    assert refused.value.status == 408 and refused.value.code == "body_timeout"


def test_upload_slots_cap_each_tenant_each_address_and_the_process():
    slots = UploadSlots(per_process=4, per_tenant=2, per_address=2)
    with contextlib.ExitStack() as held:
        held.enter_context(slots.slot("t1", "a1"))
        held.enter_context(slots.slot("t1", "a2"))
        with pytest.raises(TooManyUploads, match="your account"):
            held.enter_context(slots.slot("t1", "a3"))
        held.enter_context(slots.slot("t2", "a1"))
        with pytest.raises(TooManyUploads, match="your address"):
            held.enter_context(slots.slot("t3", "a1"))
        held.enter_context(slots.slot("t3", "a3"))
        with pytest.raises(TooManyUploads, match="this server") as full:
            held.enter_context(slots.slot("t4", "a4"))
        assert full.value.status == 429 and full.value.code == "too_many_uploads"
        assert full.value.headers["Retry-After"] == str(full.value.details["retry_after"])
        assert slots.taken("process") == 4  # a refused upload takes no slot
    assert slots.taken("process") == slots.taken("tenant", "t1") == slots.taken("address", "a1") == 0


def test_faktry_web_keeps_a_thread_that_no_upload_may_take():
    for threads, slots in ((1, 1), (2, 1), (8, 4), (9, 4)):
        command = web_command(Settings(web_threads=threads))
        served = int(command[command.index("--threads") + 1])
        assert served >= 2
        assert UploadSlots.from_settings(Settings(web_threads=threads)).caps["process"] == slots < served


def test_faktry_web_keeps_idle_connections_open_as_long_as_it_is_told():
    assert Settings().web_keepalive_seconds == 2  # gunicorn's own default
    command = web_command(Settings(web_keepalive_seconds=75))
    assert command[command.index("--keep-alive") + 1] == "75"
    assert Settings.from_env({"FAKTRY_WEB_KEEPALIVE_SECONDS": "30"}).web_keepalive_seconds == 30
    with pytest.raises(ValueError, match="FAKTRY_WEB_KEEPALIVE_SECONDS"):
        Settings(web_keepalive_seconds=0)  # gunicorn would quietly turn keep-alive off


# -- the real server -----------------------------------------------------------------------------


class Server:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.port = platform.settings.port
        self.base = platform.base
        self.tmp_dir = platform.settings.tmp_dir

    def key(self) -> str:
        return tenant_key(self.platform.settings)["Authorization"]

    def staged_uploads(self) -> list[Path]:
        return sorted(self.tmp_dir.glob("upload-*")) if self.tmp_dir.exists() else []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("slow-clients")
    with web_on_postgres(
        tmp, "slow", web_threads=THREADS, body_idle_seconds=IDLE, body_min_bytes_per_second=MIN_RATE,
        header_timeout_seconds=HEADERS, web_keepalive_seconds=KEEPALIVE,
    ) as (platform, _):  # fmt: skip
        yield Server(platform)


class SlowUpload:
    """``POST /v1/files`` over a raw socket from ``source``: the headers and the multipart
    part's head at once, then the file's bytes as the test sends them."""

    def __init__(self, server: Server, key: str, source: str, file_bytes: int = 1_000_000) -> None:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        length = len(head) + file_bytes + len(f"\r\n--{BOUNDARY}--\r\n")
        request = (
            f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        self.sock = socket.create_connection(
            ("127.0.0.1", server.port), timeout=5, source_address=(source, 0)
        )
        self.sock.sendall(request + head)
        self.answer: Answer | None = None
        self.error: OSError | None = None

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as err:
            self.error = err

    def readable(self) -> bool:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            return bool(sel.select(0))

    def close(self) -> None:
        self.sock.close()


class Answer:
    def __init__(self, sock: socket.socket, timeout: float) -> None:
        sock.settimeout(timeout)
        response = http.client.HTTPResponse(sock)
        response.begin()
        self.status = response.status
        self.headers = response.headers
        self.json: dict[str, Any] = json.loads(response.read())
        self.at = time.monotonic()
        self.closed = closed_by_peer(sock, timeout)

    @property
    def code(self) -> str:
        return str(self.json["error"]["code"])


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes the connection (after its answer) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


class Trickle(threading.Thread):
    """Sends each upload ``chunk`` bytes every ``every`` seconds until stopped (30 s at most);
    an upload the server answers is read and left alone from then on."""

    def __init__(self, uploads: list[SlowUpload], *, chunk: int, every: float) -> None:
        super().__init__(daemon=True)
        self.uploads, self.chunk, self.every = uploads, chunk, every
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            for upload in self.uploads:
                if upload.answer is not None or upload.error is not None:
                    continue
                if upload.readable():
                    try:
                        upload.answer = Answer(upload.sock, timeout=2)
                    except OSError as err:
                        upload.error = err
                else:
                    upload.send(b"\0" * self.chunk)
            self.stop.wait(self.every)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _health_check(server: Server) -> requests.Response:
    """``GET /healthz`` as a load balancer's checker sends it: a connection dropped before
    any answer is asked again once (the header deadline counts from the moment a thread
    takes the connection, and a process starved on a loaded machine can pass it)."""
    try:
        return requests.get(f"{server.base}/healthz", timeout=10)
    except requests.ConnectionError:
        return requests.get(f"{server.base}/healthz", timeout=10)


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.slow
def test_health_checks_and_other_tenants_are_answered_while_32_uploads_crawl(server):
    keys = [server.key() for _ in range(8)]
    uploads = [SlowUpload(server, keys[i % 8], f"127.0.0.{10 + i % 8}") for i in range(32)]
    trickle = Trickle(uploads, chunk=10, every=0.1)  # 100 bytes a second: slow, not too slow
    trickle.start()
    other = {"Authorization": server.key()}
    try:
        # A process takes at most half its threads in uploads: the rest are refused at once,
        # before their bodies are read.
        refused = lambda: [u for u in uploads if u.answer is not None]  # noqa: E731
        assert wait_until(lambda: len(refused()) == 32 - THREADS // 2, timeout=10), [
            u.answer.status if u.answer else u.error for u in uploads
        ]
        for upload in refused():
            assert upload.answer is not None
            assert upload.answer.status == 429 and upload.answer.code == "too_many_uploads"
            assert int(upload.answer.headers["Retry-After"]) > 0
            assert upload.answer.closed  # not drained: the connection is closed
            # ... and the answer says so, so that a client's pool never sends the next
            # request down a connection the server is closing.
            assert upload.answer.headers["Connection"].lower() == "close"
        crawling = [u for u in uploads if u.answer is None]
        assert len(crawling) == THREADS // 2 and not any(u.error for u in crawling)

        started = time.monotonic()
        for _ in range(3):
            health, took = timed(lambda: requests.get(f"{server.base}/healthz", timeout=10))
            assert health.status_code == 200 and took < PROMPT
            doc, took = timed(lambda: requests.get(f"{server.base}/v1/openapi.json", timeout=10))
            assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.1") and took < PROMPT
            jobs, took = timed(lambda: requests.get(f"{server.base}/v1/jobs", headers=other, timeout=10))
            assert jobs.status_code == 200 and took < PROMPT
            key, took = timed(
                lambda: requests.post(f"{server.base}/v1/keys", json={"name": "x"}, headers=other, timeout=10)
            )
            assert key.status_code == 201 and took < PROMPT
            trickle.stop.wait(0.5)
        # The uploads crawled on past the idle timeout the whole time, and still do.
        assert time.monotonic() - started > IDLE
        assert all(u.answer is None and u.error is None for u in crawling)
    finally:
        trickle.stop.set()
        trickle.join(10)
        for upload in uploads:
            upload.close()


def _stalled_upload(server: Server, key: str, source: str, sent: int = 100) -> SlowUpload:
    """An upload that got a slot and sent ``sent`` bytes of its file (a 429 while the last
    test's uploads wind down is retried)."""
    deadline = time.monotonic() + 10
    while True:
        upload = SlowUpload(server, key, source)
        upload.send(b"\0" * sent)
        if not wait_until(upload.readable, timeout=0.3):
            return upload
        answer = Answer(upload.sock, timeout=2)
        upload.close()
        assert answer.status == 429 and time.monotonic() < deadline, answer.json


@pytest.mark.slow
def test_a_stalled_upload_gets_a_408_within_the_idle_timeout_and_its_temp_file_is_removed(server):
    assert wait_until(lambda: not server.staged_uploads(), timeout=10)
    # More than werkzeug's 64 KiB reads, so that part of the file is on disk.
    upload = _stalled_upload(server, server.key(), "127.0.0.30", sent=200_000)
    sent = time.monotonic()
    try:
        assert wait_until(lambda: bool(server.staged_uploads()), timeout=IDLE)  # the partial file
        answer = Answer(upload.sock, timeout=IDLE + 5)
        assert answer.status == 408 and answer.code == "body_timeout"
        assert "sent nothing" in answer.json["error"]["message"]
        assert IDLE - 0.3 < answer.at - sent < IDLE + 1.5
        assert answer.closed and answer.headers["Connection"].lower() == "close"
        assert server.staged_uploads() == []
    finally:
        upload.close()


@pytest.mark.slow
def test_an_upload_slower_than_the_minimum_rate_gets_a_408(server):
    upload = _stalled_upload(server, server.key(), "127.0.0.31")
    trickle = Trickle([upload], chunk=1, every=0.1)  # 10 bytes a second, under the 50 asked
    trickle.start()
    try:
        assert wait_until(lambda: upload.answer is not None, timeout=IDLE + 5), upload.error
        assert upload.answer is not None
        assert upload.answer.status == 408 and upload.answer.code == "body_timeout"
        assert "slower than 50 bytes a second" in upload.answer.json["error"]["message"]
    finally:
        trickle.stop.set()
        trickle.join(10)
        upload.close()


@pytest.mark.slow
def test_a_stalled_log_in_gets_a_408_before_anything_is_done_with_it(server):
    body = b'{"email": "a@example.com", "password": "x"}'
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.32", 0))
    try:
        sock.sendall(
            f"POST /v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        sent = time.monotonic()
        answer = Answer(sock, timeout=IDLE + 5)
        assert answer.status == 408 and answer.code == "body_timeout"
        assert answer.at - sent < IDLE + 1.5
        assert answer.closed
    finally:
        sock.close()


@pytest.mark.slow
def test_headers_sent_a_byte_at_a_time_lose_their_connection_and_others_are_still_answered(server):
    # Twice as many slow clients as the process has threads: without the deadline on headers
    # every thread would be held for as long as they like, and /healthz would go unanswered.
    slow = []
    for i in range(THREADS * 2):
        sock = socket.create_connection(
            ("127.0.0.1", server.port), timeout=5, source_address=(f"127.0.0.{60 + i}", 0)
        )
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    started = time.monotonic()
    closed: dict[int, float] = {}
    answered_meanwhile = 0
    try:
        while len(closed) < len(slow) and time.monotonic() - started < HEADERS + 10:
            for i, sock in enumerate(slow):
                if i in closed:
                    continue
                try:
                    sock.sendall(b"a")  # one byte of an endless header, every round
                    sock.settimeout(0.01)
                    if sock.recv(65536) == b"":
                        closed[i] = time.monotonic() - started
                except (BlockingIOError, TimeoutError):
                    pass
                except OSError:  # reset or broken pipe: closed by the server
                    closed[i] = time.monotonic() - started
            health, took = timed(lambda: _health_check(server))
            # Each slow client holds a thread for at most the deadline: with twice as many
            # of them as threads, a health check waits at most two deadlines.
            assert health.status_code == 200 and took < 2 * HEADERS + PROMPT, took
            answered_meanwhile += 1
            time.sleep(0.2)
    finally:
        for sock in slow:
            sock.close()
    assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow header senders still connected"
    # None was cut before its deadline; all were gone soon after it (bounded by the loop).
    assert min(closed.values()) >= HEADERS - 0.2, closed
    assert answered_meanwhile >= 1
    # Their threads are free again: answered at once.
    health, took = timed(lambda: requests.get(f"{server.base}/healthz", timeout=10))
    assert health.status_code == 200 and took < PROMPT, took
    # A normal client on a kept-alive connection is not bound by the deadline between requests.
    with requests.Session() as session:
        assert session.get(f"{server.base}/healthz", timeout=5).status_code == 200
        time.sleep(HEADERS + 0.5)
        assert session.get(f"{server.base}/healthz", timeout=5).status_code == 200
