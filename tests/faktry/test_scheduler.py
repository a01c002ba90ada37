"""The scheduler keeps going while its database, Redis or broker is away, and counts it."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq.errors
import pytest
import redis
from sqlalchemy.exc import OperationalError

from faktry import migrate
from faktry.cli import SchedulerLoop, dependency_of, run_scheduler
from faktry.redisconn import client
from pipelines.metrics import Metrics
from tests import services as svc
from tests.platform import e2e_settings


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.05)


@contextmanager
def redis_server(port: int) -> Iterator[str]:
    """A private redis-server on `port` for the length of the block."""
    binary = shutil.which("redis-server")
    if binary is None:
        svc.missing("redis-server")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        wait_for(answers)
        probe.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def running(loop: SchedulerLoop) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(loop,), kwargs={"stopped": stop.is_set})
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
        loop.close()


def test_the_scheduler_keeps_running_while_redis_is_down_counts_it_and_recovers(tmp_path):
    port = svc.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    db_url = f"sqlite:///{tmp_path / 'faktry.db'}"
    migrate.upgrade(db_url)
    namespace = f"faktry-test-{svc.RUN_ID}-{uuid.uuid4().hex[:6]}"
    settings = e2e_settings(
        tmp_path, database_url=db_url, redis_url=url, redis_namespace=namespace, sweep_interval_seconds=0.2
    )
    loop = SchedulerLoop(settings)
    with running(loop) as thread:
        wait_for(lambda: loop.failures >= 3)
        assert thread.is_alive() and loop.passes == 0
        down = loop.failures
        with redis_server(port):
            wait_for(lambda: loop.passes >= 2)
            assert loop.failures == 0
            counts = Metrics(client(url), namespace).read()["dependency_errors"]
            # Counted in-process while Redis was away, written once it answered again.
            assert counts["scheduler|redis"] >= down


def test_the_scheduler_keeps_running_while_the_database_is_unreachable_then_recovers(tmp_path):
    if not svc.redis_available():
        svc.missing("Redis")
    folder = tmp_path / "not-yet"
    db_url = f"sqlite:///{folder / 'faktry.db'}"
    namespace = f"faktry-test-{svc.RUN_ID}-{uuid.uuid4().hex[:6]}"
    settings = e2e_settings(
        tmp_path, database_url=db_url, redis_url=svc.REDIS_URL, redis_namespace=namespace,
        sweep_interval_seconds=0.2,
    )  # fmt: skip
    loop = SchedulerLoop(settings)
    try:
        with running(loop) as thread:
            wait_for(lambda: loop.failures >= 2)
            assert thread.is_alive() and loop.passes == 0
            folder.mkdir()
            migrate.upgrade(db_url)
            wait_for(lambda: loop.passes >= 1)
        counts = Metrics(client(svc.REDIS_URL), namespace).read()["dependency_errors"]
        assert counts["scheduler|database"] >= 2
    finally:
        svc.clear_namespace(namespace)


def test_a_failed_pass_is_retried_sooner_and_sooner_no_longer_than_the_sweep_interval(tmp_path):
    settings = e2e_settings(tmp_path, sweep_interval_seconds=15.0, redis_url="redis://127.0.0.1:1/0")
    loop = SchedulerLoop(settings)
    delays = []
    for failures in range(7):
        loop.failures = failures
        delays.append(loop.delay())
    assert delays == [15.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0]
    loop.failures = 10_000
    assert loop.delay() == 15.0


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (OperationalError("SELECT 1", {}, Exception("server closed the connection")), "database"),
        (redis.ConnectionError("Connection refused"), "redis"),
        (redis.TimeoutError("Timeout reading from socket"), "redis"),
        (dramatiq.errors.ConnectionClosed(Exception("closed")), "broker"),
        (ValueError("a bug"), "other"),
    ],
)
def test_an_error_is_put_down_to_the_dependency_it_came_from(error, dependency):
    assert dependency_of(error) == dependency
