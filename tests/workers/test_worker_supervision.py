"""`faktry worker` keeps its worker processes running: one killed with SIGKILL (what the
out-of-memory killer does to a transcode grown too big) is replaced, the others and the
supervisor carry on, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from faktry import migrate
from faktry.redisconn import client
from pipelines.metrics import Metrics
from tests import services as svc
from tests.platform import Platform, e2e_settings

pytestmark = pytest.mark.slow


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children_of(ppid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == ppid:
                found.add(int(entry.name))
    return found


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.05)


@pytest.fixture
def platform(tmp_path) -> Iterator[Platform]:
    if not svc.redis_available():
        svc.missing("Redis")
    db_url = f"sqlite:///{tmp_path / 'faktry.db'}"
    migrate.upgrade(db_url)
    namespace = f"faktry-test-{svc.RUN_ID}-{uuid.uuid4().hex[:6]}"
    settings = e2e_settings(tmp_path, database_url=db_url, redis_url=svc.REDIS_URL, redis_namespace=namespace)
    platform = Platform(settings, tmp_path)
    try:
        yield platform
    finally:
        platform.stop()
        svc.clear_namespace(namespace)


def test_a_worker_process_killed_with_sigkill_is_replaced_and_sigterm_stops_them_all(platform):
    supervisor = platform.start_worker(processes=2, threads=1)
    ready = "worker process ready"
    wait_for(lambda: platform.logs().count(ready) == 2 and len(children_of(supervisor.popen.pid)) == 2)
    first = children_of(supervisor.popen.pid)
    victim, survivor = sorted(first)

    os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer does
    wait_for(lambda: len(children_of(supervisor.popen.pid) - first) == 1)
    wait_for(lambda: platform.logs().count(ready) == 3)
    now = children_of(supervisor.popen.pid)
    assert survivor in now and victim not in now and len(now) == 2
    assert supervisor.popen.poll() is None, "the supervisor stays up"
    assert f"(pid {victim}) exited with signal SIGKILL" in platform.logs()
    restarts = Metrics(client(svc.REDIS_URL), platform.settings.redis_namespace).read()["process_restarts"]
    assert sum(restarts.values()) == 1, restarts

    supervisor.popen.send_signal(signal.SIGTERM)
    assert supervisor.popen.wait(platform.settings.worker_shutdown_seconds + 15) == 0
    assert not [pid for pid in now if alive(pid)]
    assert platform.logs().count("worker process stopped") == 2
