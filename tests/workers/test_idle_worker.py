"""An idle worker waits for wake-ups instead of polling Redis (workers/wakeup.py): it sends
Redis next to nothing while idle, yet picks up a new job, runs delayed messages when due,
keeps its heartbeat and stops promptly. Each test runs a redis-server of its own so that
Redis's command counts are the test's alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq import Worker

from faktry.config import Settings
from tests.platform import PrivateRedis
from workers.broker import make_broker
from workers.wakeup import WakingRedisBroker

QUEUE = "local.small"


@pytest.fixture
def private_redis_url(tmp_path: Path) -> Iterator[str]:
    with PrivateRedis(tmp_path) as server:
        yield server.url


class Ran:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.changed = threading.Condition()

    def __call__(self, i: int) -> None:
        with self.changed:
            self.seen.add(i)
            self.changed.notify_all()

    def wait_for(self, i: int, timeout: float = 15.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: i in self.seen, timeout=timeout)


@pytest.fixture
def idle_worker(private_redis_url: str) -> Iterator[tuple[Any, Any, Ran]]:
    settings = Settings(redis_url=private_redis_url, redis_namespace="idle-test")
    broker = make_broker(settings, private_redis_url)
    assert isinstance(broker, WakingRedisBroker)
    ran = Ran()
    actor = dramatiq.actor(ran, broker=broker, actor_name="ping", queue_name=QUEUE)
    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        yield broker, actor, ran
    finally:
        worker.stop()
        broker.close()


def commands(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")
    finally:
        client.close()


def test_an_idle_worker_sends_redis_few_commands_and_still_picks_up_a_new_job(private_redis_url, idle_worker):
    _, actor, ran = idle_worker
    actor.send(0)  # the subscription is up once a first job went through
    assert ran.wait_for(0)
    time.sleep(0.5)
    before = commands(private_redis_url)
    time.sleep(2.0)
    idle = commands(private_redis_url) - before
    # Polling every 50 ms, sixteen consumers (eight queues and their delay queues) ran
    # about 2,000 commands in two seconds. Waiting, at most one heartbeat round falls in
    # the window: a fetch with maintenance per consumed queue, four commands each.
    assert idle <= 16 * 4 + 8, idle
    actor.send(1)
    assert ran.wait_for(1)


def test_a_delayed_message_runs_when_due_while_the_worker_waits(idle_worker):
    _, actor, ran = idle_worker
    actor.send_with_options(args=(2,), delay=300)
    assert ran.wait_for(2)


def test_an_idle_worker_keeps_its_heartbeat(private_redis_url):
    # A heartbeat timeout of 2 s: the process heartbeats every 0.5 s however idle it is.
    settings = Settings(
        redis_url=private_redis_url, redis_namespace="beat-test", broker_heartbeat_ms=2000,
        job_lease_seconds=1.0, job_heartbeat_seconds=0.5,
    )  # fmt: skip
    broker = make_broker(settings, private_redis_url)
    assert isinstance(broker, WakingRedisBroker)
    dramatiq.actor(Ran(), broker=broker, actor_name="ping", queue_name=QUEUE)
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    client = redis.Redis.from_url(private_redis_url)
    try:
        beats = []
        for _ in range(6):
            time.sleep(0.5)
            score = client.zscore("beat-test:__heartbeats__", broker.broker_id)
            beats.append(score)
        assert all(beats) and len(set(beats)) >= 3, beats  # renewed again and again
        now_ms = client.time()[0] * 1000
        assert now_ms - max(b for b in beats if b) < 2000
    finally:
        worker.stop()
        broker.close()
        client.close()


def test_a_waiting_worker_stops_without_waiting_out_its_idle_check(idle_worker):
    broker, _, _ = idle_worker
    assert broker.idle_check_ms >= 10_000
    worker = Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < broker.idle_check_ms / 1000 / 4
