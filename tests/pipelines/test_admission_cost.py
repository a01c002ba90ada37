"""What a job costs in Redis, counted rather than timed: admitting a job runs as many Redis
commands with 2,000 tenants holding backlog as with 10; a job that ends pumps its own queue
only (and the queue where its tenant waited out its cap, when it did); metrics are written
at most once per interval per process, and none is lost while Redis is away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pipelines.admission import Admission, AdmittingSender
from pipelines.metrics import Metrics
from quotas.ratelimit import RunningSlots
from tests import services as svc
from tests.platform import PrivateRedis

Q, OTHER = "local.small", "local.large"


@pytest.fixture
def private_redis_url(tmp_path: Path) -> Iterator[str]:
    with PrivateRedis(tmp_path) as server:
        yield server.url


def commands_per_admit(url: str, tenants: int, admits: int = 50) -> float:
    client = redis.Redis.from_url(url)
    ns = f"cost-{tenants}"
    adm = Admission(client, ns, depth=10**6, running_namespace=ns)
    pipe = client.pipeline(transaction=False)
    for i in range(tenants):  # what offer() leaves behind, written in bulk to save time
        tenant = f"t{i:05d}"
        backlog = max(3, admits // tenants + 2)  # every tenant keeps a backlog throughout
        pipe.rpush(f"{ns}:admission:{Q}:t:{tenant}", *[f"{tenant}-{j}" for j in range(backlog)])
        pipe.hset(f"{ns}:admission:{Q}:weights", tenant, 1 + i % 3)
        pipe.hset(f"{ns}:admission:{Q}:caps", tenant, 4)
        pipe.zadd(f"{ns}:admission:{Q}:tenants", {tenant: 0})
    pipe.execute()
    adm.offer(Q, "t00000", "t00000-extra", weight=1, cap=4)
    adm.admit(Q, most=1)
    client.config_resetstat()
    for _ in range(admits):
        assert len(adm.admit(Q, most=1)) == 1
    stats = client.info("commandstats")
    client.close()
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info") / admits


def test_admitting_a_job_runs_as_many_redis_commands_with_2000_tenants_as_with_10(private_redis_url):
    few = commands_per_admit(private_redis_url, 10)
    many = commands_per_admit(private_redis_url, 2000)
    assert abs(many - few) < 0.5, (few, many)  # the same script work, give or take a list emptied
    assert few <= 20  # one script call and its own constant work


def test_a_tenant_at_its_cap_costs_one_move_not_a_scan_per_admitted_job(private_redis_url):
    client = redis.Redis.from_url(private_redis_url)
    adm = Admission(client, "capped", depth=10**6, running_namespace="capped")
    slots = RunningSlots(client, "capped")
    for i in range(200):  # 200 tenants at their cap, ahead in the fair order of one that is not
        tenant = f"a{i:03d}"
        assert slots.acquire(tenant, f"{tenant}-running", limit=1, ttl_seconds=60)
        adm.offer(Q, tenant, f"{tenant}-0", weight=1, cap=1)
    for j in range(60):
        adm.offer(Q, "z", f"z-{j}", weight=1, cap=0)
    assert [a.tenant_id for a in adm.admit(Q, most=10)] == ["z"] * 10
    assert len(adm.capped(Q)) == 200
    client.config_resetstat()
    for _ in range(50):
        assert [a.tenant_id for a in adm.admit(Q, most=1)] == ["z"]
    stats = client.info("commandstats")
    client.close()
    per_admit = sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info") / 50
    assert per_admit <= 25, per_admit  # the capped tenants are out of the order, not walked past


class Recording:
    """A broker sender that records what admission lets through."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, queue: str, job_id: str, *, admitted: bool = False) -> None:
        self.sent.append((queue, job_id))


@pytest.fixture
def counted(redis_namespace) -> Iterator[tuple[AdmittingSender, list[str], Any]]:
    client = redis.Redis.from_url(svc.REDIS_URL)
    adm = Admission(client, redis_namespace, depth=100, running_namespace=redis_namespace)
    pumped: list[str] = []
    run = adm._run

    def counting(queue: str, most: int, **kwargs: Any) -> Any:
        pumped.append(queue)
        return run(queue, most, **kwargs)

    adm._run = counting  # type: ignore[method-assign]
    sender = AdmittingSender(Recording(), adm, sessions=None, queues=[Q, OTHER, "openai.small"])
    yield sender, pumped, client
    client.close()


def test_a_job_that_ends_pumps_only_its_own_queue(counted):
    sender, pumped, _ = counted
    for queue in (Q, OTHER):
        sender.admission.offer(queue, "A", f"A-{queue}", weight=1, cap=2)
        sender.pump(queue)
    pumped.clear()
    sender.finished(Q, f"A-{Q}")
    assert pumped == [Q]


def test_a_slot_freed_on_one_queue_admits_the_tenant_on_another_at_once(counted, redis_namespace):
    sender, pumped, client = counted
    slots = RunningSlots(client, redis_namespace)
    sender.admission.offer(Q, "A", "A-1", weight=1, cap=1)
    sender.pump(Q)
    assert slots.acquire("A", "A-1", limit=1, ttl_seconds=60)  # the runner starts it
    sender.admission.offer(OTHER, "A", "A-2", weight=1, cap=1)
    sender.pump(OTHER)
    assert sender.broker_sender.sent == [(Q, "A-1")]  # A-2 waits out A's cap
    assert sender.admission.capped(OTHER) == {"A"}
    slots.release("A", "A-1")  # the runner is done with it
    pumped.clear()
    sender.finished(Q, "A-1")
    assert pumped == [Q, OTHER]
    assert sender.broker_sender.sent[-1] == (OTHER, "A-2")
    assert sender.admission.capped(OTHER) == set()


def test_the_reconcilers_sweep_returns_a_tenant_whose_lease_ran_out(counted, redis_namespace):
    sender, _, client = counted
    slots = RunningSlots(client, redis_namespace)
    assert slots.acquire("A", "A-gone", limit=1, ttl_seconds=0.3)  # its worker dies
    sender.admission.offer(OTHER, "A", "A-2", weight=1, cap=1)
    assert sender.pump(OTHER) == 0
    time.sleep(0.4)
    assert sender.pump_all() == 1
    assert sender.broker_sender.sent == [(OTHER, "A-2")]


def test_the_worker_reports_the_job_it_ran_on_that_queue_and_pumps_nothing_else(runtime):
    from dramatiq import Worker

    from workers.actors import jobs
    from workers.broker import BrokerSender

    calls: list[tuple[str, ...]] = []

    class Admitting:
        admission = None

        def finished(self, queue: str, job_id: str, *, slot_of: str | None = None) -> int:
            calls.append(("finished", queue, job_id))
            return 0

        def pump_all(self) -> int:
            calls.append(("pump_all",))
            return 0

    runtime.broker.actors.pop("run_job", None)
    jobs.declare(runtime.broker, runtime.context, Admitting())
    runtime.broker.emit_after("process_boot")
    worker = Worker(runtime.broker, worker_threads=1, worker_timeout=20)
    worker.start()
    try:
        BrokerSender(runtime.broker).send(OTHER, "no-such-job")
        deadline = time.monotonic() + 15
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert calls == [("finished", OTHER, "no-such-job")]


class CountingRedis(redis.Redis):
    """Counts pipelines sent."""

    executes = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def counted(raise_on_error: bool = True) -> Any:
            CountingRedis.executes += 1
            return execute(raise_on_error)

        pipe.execute = counted
        return pipe


def test_metrics_are_written_at_most_once_per_interval_per_process(redis_namespace):
    client = CountingRedis.from_url(svc.REDIS_URL)
    metrics = Metrics(client, redis_namespace, flush_seconds=0.25)
    CountingRedis.executes = 0
    started = time.monotonic()
    for _ in range(200):
        metrics.job_finished("media.probe", "succeeded", 0.3)
        metrics.job_created("media.probe")
        time.sleep(0.005)
    took = time.monotonic() - started
    time.sleep(0.6)  # the last interval is written by the background thread
    assert 1 <= CountingRedis.executes <= took / 0.25 + 2, (CountingRedis.executes, took)
    counts = metrics.read()
    assert counts["jobs_total"] == {"media.probe|succeeded": 200, "media.probe|created": 200}
    assert counts["duration:media.probe"]["0.5"] == 200
    assert counts["duration:media.probe"]["sum"] == pytest.approx(60.0)
    client.close()


def test_metrics_counted_while_redis_is_away_are_written_when_it_answers(redis_namespace):
    away = redis.Redis(host="127.0.0.1", port=svc.free_port(), socket_connect_timeout=0.2)
    metrics = Metrics(away, redis_namespace, flush_seconds=0.05)
    for _ in range(5):
        metrics.job_finished("media.probe", "failed", None)
        metrics.dependency_error("worker", "redis")
    time.sleep(0.3)  # the background thread tries, and keeps them
    back = Metrics(redis.Redis.from_url(svc.REDIS_URL), redis_namespace, flush_seconds=0.05)
    counts = back.read()
    assert counts["jobs_total"] == {"media.probe|failed": 5}
    assert counts["dependency_errors"] == {"worker|redis": 5}
