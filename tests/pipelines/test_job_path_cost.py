"""What one small job costs the platform, counted (never timed): transactions and SQL
statements per submit and per run, and Redis round trips per job end to end. The bounds
are today's figures; a change that adds to them should say why."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import event

from pipelines import runner
from tests import services as svc
from tests.web.helpers import upload, wait_for_job


class Counted:
    """Transactions and statements on some engines, while counting is on."""

    def __init__(self, *engines) -> None:
        self.engines = engines
        self.transactions = 0
        self.statements: list[str] = []

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)

    def _begin(self, conn) -> None:
        self.transactions += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[Counted]:
        self.transactions, self.statements = 0, []
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "begin", self._begin)
        try:
            yield self
        finally:
            for engine in self.engines:
                event.remove(engine, "before_cursor_execute", self._statement)
                event.remove(engine, "begin", self._begin)

    def writes(self) -> list[str]:
        return [s for s in self.statements if not s.lstrip().upper().startswith(("SELECT", "BEGIN"))]


@pytest.fixture
def small_job(client, make_tenant, png_image):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    # A first job warms what a busy platform has warm: the key and tier caches.
    client.post("/v1/jobs", json=body, headers=tenant.headers)
    return tenant, body


def test_a_submit_is_one_transaction_of_a_dozen_statements(client, app, runtime, small_job):
    tenant, body = small_job
    counted = Counted(app.extensions["faktry"].sessions.kw["bind"])
    with counted.counting():
        r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202
    assert counted.transactions == 1
    # key row, input file; job, account lock, lots, hold, lot, allocation, entry, event
    assert len(counted.statements) <= 11, counted.statements


def test_a_run_is_two_transactions_claim_and_success(client, runtime, small_job):
    tenant, body = small_job
    job_id = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
    ctx = runtime.context
    ctx.tiers.limits  # noqa: B018 - the tier cache is warm on a busy worker, as below
    with ctx.sessions() as warm:
        ctx.tiers.limits(warm, tenant.id)
    counted = Counted(ctx.sessions.kw["bind"])
    with counted.counting():
        runner.run(ctx, job_id)
    assert counted.transactions == 2
    # claim (with its input file) + event; success + storage + hold + allocation + lot + entry + file +
    # output + event
    assert len(counted.statements) <= 13, counted.statements
    assert wait_for_job(client, tenant, job_id)["status"] == "succeeded"


class RoundTrips:
    """Counts what redis-py sends: one packed send is one round trip (a pipeline's too)."""

    def __init__(self) -> None:
        self.count = 0
        self.sent: list[bytes] = []
        self._original = redis.connection.AbstractConnection.send_packed_command

    @contextlib.contextmanager
    def counting(self, *, this_thread: bool = False) -> Iterator[RoundTrips]:
        """Count sends while in the block; with ``this_thread``, only this thread's (not a
        background thread's, such as the metrics flush a job before left behind)."""
        original = self._original
        counter = self
        self.count, self.sent = 0, []
        me = threading.get_ident()

        def send_packed_command(conn, command, check_health=True):  # type: ignore[no-untyped-def]
            if this_thread and threading.get_ident() != me:
                return original(conn, command, check_health)
            counter.count += 1
            counter.sent.append(command if isinstance(command, bytes) else b"".join(command)[:120])
            return original(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
        try:
            yield self
        finally:
            redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def test_a_job_end_to_end_costs_a_bounded_number_of_redis_round_trips(client, runtime, settings, small_job):
    """Submit (the API request budget, the tier's rate limit, fair admission's offer and
    pump, the broker's enqueue with its hand-over key and wake-up) and run (the worker's fetch and ack, the running slot,
    admission's pump after it), for one job on an otherwise idle platform."""
    if not svc.redis_available():
        svc.missing("Redis")
    from dramatiq import Worker

    from workers.actors import jobs as actors
    from workers.broker import make_sender

    tenant, body = small_job
    sender = make_sender(settings, runtime.broker, svc.REDIS_URL, runtime.context.sessions)
    client.application.extensions["faktry"].sender = sender
    runtime.broker.actors.pop("run_job", None)
    actors.declare(runtime.broker, runtime.context, sender)

    def work() -> Worker:
        runtime.broker.emit_after("process_boot")
        w = Worker(runtime.broker, worker_threads=1, worker_timeout=20)
        w.start()
        return w

    # A first job opens the connections a running platform has open.
    worker = work()
    try:
        warm = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
        assert wait_for_job(client, tenant, warm)["status"] == "succeeded"
    finally:
        worker.stop()
    trips = RoundTrips()
    with trips.counting(this_thread=True):  # no worker: only the submit's own traffic
        job_id = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
    submitted, sent_by_submit = trips.count, list(trips.sent)
    worker = work()
    try:
        with trips.counting():
            assert wait_for_job(client, tenant, job_id)["status"] == "succeeded"
    finally:
        worker.stop()
    # The API request budget (the RateLimit-* headers) with the tier's rate limit (one trip),
    # admission's offer with its pump (one trip), the enqueue with its wake-up and hand-over
    # key (one trip), and its removal from admission's `sending` once it is with the broker.
    assert submitted <= 4, [c.split(b"\r\n")[2:7:2] for c in sent_by_submit]
    # The worker's idle fetches while it waits are not the job's; a generous bound keeps
    # the test about the job path, not about how fast this machine starts a thread.
    # The run: the worker's fetch and ack, the running slot, admission's pump, the idle
    # worker's own fetches meanwhile; bounded generously so it stays about the job path.
    assert trips.count <= 40, trips.count
    # The tenant's running slot is given up in the round trip of admission's pump after the
    # job (`runner.Ended`), not by a command of its own; and it is free.
    slots = runtime.context.slots
    assert slots is not None
    assert not [c for c in trips.sent if b"ZREM" in c[:16] and slots.key(tenant.id).encode() in c], trips.sent
    assert slots.count(tenant.id) == 0


def test_a_pump_that_fails_after_a_job_still_gives_up_the_running_slot(client, runtime, small_job):
    """The slot goes with the pump after a job (`runner.Ended`); a pump lost to a Redis blink
    gives it up on its own instead of leaving it to its lease."""
    if not svc.redis_available():
        svc.missing("Redis")
    import time

    from dramatiq import Worker

    from workers.actors import jobs as actors

    ctx = runtime.context
    slots = ctx.slots
    assert slots is not None
    pumps: list[str | None] = []

    class LostPump:
        admission = type("Admission", (), {"running_prefix": slots.key("")})()

        def finished(self, queue: str, job_id: str, *, slot_of: str | None = None) -> int:
            pumps.append(slot_of)
            raise redis.ConnectionError("the pump's round trip was lost")

        def pump_all(self) -> int:
            return 0

    tenant, body = small_job
    runtime.broker.actors.pop("run_job", None)
    actors.declare(runtime.broker, ctx, LostPump())
    runtime.broker.emit_after("process_boot")
    worker = Worker(runtime.broker, worker_threads=1, worker_timeout=20)
    worker.start()
    try:
        job_id = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
        assert wait_for_job(client, tenant, job_id)["status"] == "succeeded"
        deadline = time.monotonic() + 10
        while tenant.id not in pumps and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert tenant.id in pumps  # the pump was to give up the tenant's slot, and failed
    assert slots.count(tenant.id) == 0
