"""Event streams (web/streams.py, web/api/streams.py) on the real ``faktry web``.

A gunicorn process on a free port, on PostgreSQL, with four threads. Events are written to
the event tables by the test, committed, and read by clients over raw loopback sockets: a
resumed stream gets exactly the events after its ``Last-Event-ID``; an idle one gets
keep-alive comments; another tenant's job stream is a 404 and the tenant stream never
carries another tenant's events; many open streams leave the threads free for other calls.
Then the horizon on its own (`Feed`): an id that is not yet visible holds back the ones
after it until it appears or has been missing for the gap time.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import insert

from faktry import migrate
from faktry.config import Settings
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import create_api_key, create_tenant
from pipelines.models import Job, JobEvent
from pipelines.workflows.models import WorkflowEvent, WorkflowRun
from tests.platform import Platform, web_on_postgres
from web.streams import Feed, Hub, Stream, catch_up, parse_cursor

THREADS = 4
#: How long a test waits for something that should come at once (a safety net, not a timing).
PATIENCE = 20.0


@dataclass
class Tenant:
    id: str
    headers: dict[str, str]


@dataclass
class Server:
    platform: Platform
    settings: Settings
    sessions: Any
    tenants: list[Tenant] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.platform.base

    def tenant(self) -> Tenant:
        with transaction(self.sessions) as session:
            tenant, user = create_tenant(
                session, email=f"streams-{uuid.uuid4().hex[:8]}@example.com", tier="studio", bcrypt_rounds=4
            )
            _, plain = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
        return Tenant(tenant.id, {"Authorization": f"Bearer {plain}"})

    def job(self, tenant: Tenant) -> str:
        with transaction(self.sessions) as session:
            job = Job(tenant_id=tenant.id, type="image.resize", queue="default")
            session.add(job)
            session.flush()
            return job.id

    def job_events(self, tenant: Tenant, job_id: str, *kinds: str) -> None:
        with transaction(self.sessions) as session:
            for kind in kinds:
                session.execute(
                    insert(JobEvent).values(
                        job_id=job_id, tenant_id=tenant.id, kind=kind, status="running", attempt=1, data={}
                    )
                )

    def run_events(self, tenant: Tenant, *kinds: str) -> str:
        with transaction(self.sessions) as session:
            run = WorkflowRun(tenant_id=tenant.id, graph={})
            session.add(run)
            session.flush()
            for kind in kinds:
                session.execute(
                    insert(WorkflowEvent).values(run_id=run.id, tenant_id=tenant.id, kind=kind, data={})
                )
            return run.id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("streams")
    with web_on_postgres(
        tmp, "streams", web_threads=THREADS, stream_poll_seconds=0.05, stream_gap_seconds=1.0,
        stream_keepalive_seconds=0.5, api_requests_per_minute=600,
    ) as (platform, settings):  # fmt: skip
        engine = make_engine(settings.resolved_database_url)
        try:
            yield Server(platform, settings, make_sessionmaker(engine))
        finally:
            engine.dispose()


class Client:
    """An event-stream client on a raw socket: the answer's head, then one event or comment
    at a time."""

    def __init__(self, server: Server, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.settings.port), timeout=PATIENCE)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}

    def _until(self, mark: bytes) -> bytes:
        while mark not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"closed; got {self.buffer!r}")
            self.buffer += data
        block, _, self.buffer = self.buffer.partition(mark)
        return block

    def block(self) -> dict[str, str]:
        """The next block: ``{"comment": ...}``, ``{"retry": ...}`` or an event's fields."""
        fields: dict[str, str] = {}
        for line in self._until(b"\n\n").decode().split("\n"):
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.strip()
        return fields

    def events(self, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while len(found) < count:
            block = self.block()
            if "data" in block:
                data = json.loads(block["data"])
                found.append({"id": block["id"], "event": data["type"], **data})
        return found

    def body(self) -> bytes:
        while data := self.sock.recv(65536):
            self.buffer += data
        return self.buffer

    def close(self) -> None:
        self.sock.close()


def test_a_job_stream_resumed_with_last_event_id_misses_and_repeats_nothing(server):
    alice = server.tenant()
    job = server.job(alice)
    server.job_events(alice, job, "created", "enqueued")
    client = Client(server, f"/v1/jobs/{job}/events/stream", alice.headers)
    assert client.status == 200 and client.headers["content-type"].startswith("text/event-stream")
    assert client.block() == {"retry": str(server.settings.stream_retry_ms)}
    first = client.events(2)  # the backlog: the job's events from its first
    assert [e["event"] for e in first] == ["job.created", "job.enqueued"]
    server.job_events(alice, job, "started", "progress")
    live = client.events(2)
    assert [e["event"] for e in live] == ["job.started", "job.progress"]
    client.close()

    # While nobody listens, three more; the client comes back with the last id it saw.
    server.job_events(alice, job, "progress", "progress", "succeeded")
    again = Client(
        server, f"/v1/jobs/{job}/events/stream", {**alice.headers, "Last-Event-ID": live[-1]["id"]}
    )
    resumed = again.events(3)
    server.job_events(alice, job, "requeued")
    resumed += again.events(1)
    again.close()
    seen = first + live + resumed
    assert [e["event"] for e in resumed] == ["job.progress", "job.progress", "job.succeeded", "job.requeued"]
    sequences = [e["sequence"] for e in seen]
    assert sequences == sorted(set(sequences)) and len(sequences) == 8
    assert [e["id"] for e in seen] == [str(s) for s in sequences]
    assert {e["job_id"] for e in seen} == {job}

    # The full history, read with the ordinary API, is exactly what the streams carried.
    listed = requests.get(f"{server.base}/v1/jobs/{job}/events", headers=alice.headers, timeout=PATIENCE)
    assert [e["id"] for e in listed.json()["data"]] == sequences


def test_the_tenant_stream_carries_job_and_run_events_and_resumes_on_both(server):
    alice = server.tenant()
    job = server.job(alice)
    client = Client(server, "/v1/events/stream", alice.headers)
    client.block()  # retry
    server.job_events(alice, job, "created")
    run = server.run_events(alice, "started", "step_queued")
    got = client.events(3)
    client.close()
    assert sorted(e["event"] for e in got) == [
        "job.created",
        "workflow_run.started",
        "workflow_run.step_queued",
    ]
    assert {e.get("run_id") for e in got if e["event"].startswith("workflow_run")} == {run}
    last = got[-1]["id"]
    assert parse_cursor(last) == (
        max(e["sequence"] for e in got if e["event"].startswith("job")),
        max(e["sequence"] for e in got if e["event"].startswith("workflow_run")),
    )

    server.job_events(alice, job, "started")
    server.run_events(alice, "succeeded")
    again = Client(server, "/v1/events/stream", {**alice.headers, "Last-Event-ID": last})
    more = again.events(2)
    again.close()
    assert sorted(e["event"] for e in more) == ["job.started", "workflow_run.succeeded"]


def test_an_idle_stream_gets_keep_alive_comments(server):
    alice = server.tenant()
    client = Client(server, "/v1/events/stream", alice.headers)
    client.block()  # retry
    assert client.block() == {"comment": "keep-alive"}
    assert client.block() == {"comment": "keep-alive"}
    client.close()


def test_another_tenants_job_stream_is_a_404_and_the_tenant_stream_shows_only_its_own(server):
    alice, bob = server.tenant(), server.tenant()
    alices_job, bobs_job = server.job(alice), server.job(bob)
    theirs = requests.get(
        f"{server.base}/v1/jobs/{alices_job}/events/stream", headers=bob.headers, timeout=PATIENCE
    )
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "job_not_found"

    bobs = Client(server, "/v1/events/stream", bob.headers)
    bobs.block()
    # A resume id from before Alice's events cannot bring them in either.
    bobs_resumed = Client(server, "/v1/events/stream", {**bob.headers, "Last-Event-ID": "0-0"})
    server.job_events(alice, alices_job, "created", "started")
    server.run_events(alice, "started")
    server.job_events(bob, bobs_job, "created")
    # Bob's event was committed after Alice's: had hers been sent to him, they came first.
    [mine] = bobs.events(1)
    assert mine["job_id"] == bobs_job and mine["event"] == "job.created"
    replayed = bobs_resumed.events(1)
    assert replayed[0]["job_id"] == bobs_job
    bobs.close()
    bobs_resumed.close()


def test_open_streams_do_not_hold_the_web_threads(server):
    alice = server.tenant()
    job = server.job(alice)
    clients = [Client(server, f"/v1/jobs/{job}/events/stream", alice.headers) for _ in range(THREADS * 6)]
    try:
        # Every one of them was answered, so none waits for a thread; other calls still are.
        assert all(c.status == 200 for c in clients)
        for _ in range(THREADS * 2):
            answer = requests.get(f"{server.base}/v1/jobs/{job}", headers=alice.headers, timeout=PATIENCE)
            assert answer.status_code == 200
        server.job_events(alice, job, "created")
        assert all(c.events(1)[0]["event"] == "job.created" for c in clients)
    finally:
        for c in clients:
            c.close()


def test_a_malformed_last_event_id_is_a_422_naming_the_header(server):
    alice = server.tenant()
    answer = requests.get(
        f"{server.base}/v1/events/stream",
        headers={**alice.headers, "Last-Event-ID": "12-x"},
        timeout=PATIENCE,
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "Last-Event-ID"


def test_api_answers_carry_rate_limit_headers_that_count_down(server):
    alice = server.tenant()
    seen = []
    for _ in range(3):
        answer = requests.get(f"{server.base}/v1/jobs", headers=alice.headers, timeout=PATIENCE)
        assert answer.status_code == 200
        seen.append(answer.headers)
    assert {h["RateLimit-Limit"] for h in seen} == {"600"}
    remaining = [int(h["RateLimit-Remaining"]) for h in seen]
    assert remaining == sorted(remaining, reverse=True) and remaining[0] > remaining[-1]
    assert all(int(h["RateLimit-Reset"]) >= 0 for h in seen)
    # Answers to callers with no credentials, and errors, carry them too.
    anonymous = requests.get(f"{server.base}/v1/jobs", timeout=PATIENCE)
    assert anonymous.status_code == 401 and "RateLimit-Remaining" in anonymous.headers
    missing = requests.get(f"{server.base}/v1/jobs/job_{'0' * 24}", headers=alice.headers, timeout=PATIENCE)
    assert missing.status_code == 404 and "RateLimit-Remaining" in missing.headers


# -- the horizon on its own ------------------------------------------------------------------------


@pytest.fixture
def sqlite_sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _add(sessions, tenant_id, job_id, *ids):
    with transaction(sessions) as session:
        for seq in ids:
            session.execute(
                insert(JobEvent).values(
                    id=seq, job_id=job_id, tenant_id=tenant_id, kind="progress", status="running", data={}
                )
            )


def test_the_horizon_waits_for_a_missing_id_until_it_appears_or_the_gap_time_passes(sqlite_sessions):
    with transaction(sqlite_sessions) as session:
        tenant, _ = create_tenant(session, email="feed@example.com", tier="studio", bcrypt_rounds=4)
        job = Job(tenant_id=tenant.id, type="image.resize", queue="default")
        session.add(job)
    now = [100.0]
    feed = Feed("job", gap_seconds=5.0, clock=lambda: now[0])
    with sqlite_sessions() as session:
        feed.start(session)
    assert feed.horizon == 0

    _add(sqlite_sessions, tenant.id, job.id, 1, 2, 4, 5)  # 3 is still being committed
    with sqlite_sessions() as session:
        assert [e.seq for e in feed.advance(session)] == [1, 2]
        assert feed.horizon == 2
        now[0] += 4.9
        assert feed.advance(session) == []
    _add(sqlite_sessions, tenant.id, job.id, 3)  # it commits: everything goes, in order
    with sqlite_sessions() as session:
        assert [e.seq for e in feed.advance(session)] == [3, 4, 5]

    _add(sqlite_sessions, tenant.id, job.id, 7, 9)  # 6 and 8 were rolled back: never filled
    with sqlite_sessions() as session:
        assert feed.advance(session) == []
        now[0] += 5.0
        assert [e.seq for e in feed.advance(session)] == [7, 9]
        assert feed.horizon == 9


# -- served by another server: the backlog, then the end ------------------------------------------


@pytest.fixture
def small_budget_app(settings, runtime):
    from web import create_app
    from workers.broker import BrokerSender

    # Holes in the event ids (other tests' rolled-back inserts, seconds ago) are not waited
    # for here: these tests are about the answer without hand-off, not about holes.
    app = create_app(
        settings.replace(api_requests_per_minute=3, stream_gap_seconds=0.0),
        sender=BrokerSender(runtime.broker),
    )
    app.testing = True
    return app


def test_without_hand_off_a_stream_answers_its_backlog_and_ends_and_resumes_by_query(
    small_budget_app, make_tenant, settings
):
    client = small_budget_app.test_client()
    tenant = make_tenant()
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        job = Job(tenant_id=tenant.id, type="image.resize", queue="default")
        session.add(job)
        session.flush()
        for kind in ("created", "started"):
            session.execute(
                insert(JobEvent).values(
                    job_id=job.id, tenant_id=tenant.id, kind=kind, status="running", data={}
                )
            )
    engine.dispose()
    first = client.get(f"/v1/jobs/{job.id}/events/stream", headers=tenant.headers)
    assert first.status_code == 200 and first.mimetype == "text/event-stream"
    blocks = first.get_data(as_text=True).split("\n\n")
    events = [dict(line.split(": ", 1) for line in b.split("\n")) for b in blocks if b.startswith("id:")]
    assert [json.loads(e["data"])["type"] for e in events] == ["job.created", "job.started"]

    again = client.get(
        f"/v1/jobs/{job.id}/events/stream?last_event_id={events[0]['id']}", headers=tenant.headers
    )
    assert [
        json.loads(line[6:])["type"]
        for line in again.get_data(as_text=True).split("\n")
        if line[:5] == "data:"
    ] == ["job.started"]


def test_a_call_over_the_budget_is_a_429_whose_headers_say_when_to_come_back(small_budget_app, make_tenant):
    client = small_budget_app.test_client()
    tenant = make_tenant()
    answers = [client.get("/v1/jobs", headers=tenant.headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == refused.headers["RateLimit-Reset"]
    assert int(refused.headers["RateLimit-Reset"]) >= 1
    # Another tenant's budget is its own.
    assert client.get("/v1/jobs", headers=make_tenant().headers).status_code == 200


# -- the hub on its own: streams it closes -------------------------------------------------------


def _parked(hub, tenant_id: str) -> socket.socket:
    """A tenant stream parked on ``hub`` over a socket pair; returns the client's end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stream = Stream(tenant_id, None, hub.horizon(), sock=ours)
    catch_up(hub, stream, write=lambda data: None)
    return theirs


def _ended(sock: socket.socket) -> bytes:
    """Everything the client's end receives until the hub closes the stream."""
    sock.settimeout(PATIENCE)
    received = bytearray()
    while data := sock.recv(65536):
        received += data
    return bytes(received)


def test_the_hub_closes_a_stream_whose_client_does_not_read_and_one_past_its_lifetime(settings, make_tenant):
    tenant = make_tenant()
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        job = Job(tenant_id=tenant.id, type="image.resize", queue="default")
        session.add(job)
    hub = Hub(sessions, settings.replace(stream_poll_seconds=0.01, stream_gap_seconds=0.0))
    short = Hub(
        sessions, settings.replace(stream_poll_seconds=0.01, stream_gap_seconds=0.0, stream_max_seconds=0.05)
    )
    try:
        _cut_off(hub, short, sessions, tenant.id, job.id)
    finally:
        hub.close()
        short.close()
        engine.dispose()


def _cut_off(hub: Hub, short: Hub, sessions: Any, tenant_id: str, job_id: str) -> None:
    stuck = _parked(hub, tenant_id)  # never read until the end
    # 3 MB of events: far more than the socket buffers and the hub's 512 KiB hold for it.
    with transaction(sessions) as session:
        session.execute(
            insert(JobEvent),
            [
                {"job_id": job_id, "tenant_id": tenant_id, "kind": "progress", "status": "running",
                 "attempt": 1, "data": {"pad": "x" * 1000}}
                for _ in range(3000)
            ],
        )  # fmt: skip
    deadline = time.monotonic() + PATIENCE
    while hub.count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hub.count() == 0  # cut off while its client read nothing
    received = _ended(stuck)
    assert 0 < received.count(b"\ndata: ") < 3000  # what the buffers held, then the end

    assert _ended(_parked(short, tenant_id)) == b""  # closed at its age, with nothing to say
