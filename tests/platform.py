"""A running faktry in real processes, as a pytest plugin: the web server (gunicorn),
Dramatiq workers, the scheduler, ``faktry up``.

Every process starts in its own process group and is stopped with it, ffmpeg children
included; logs go to files under the test's temp folder and are printed when a test fails.
Tests and benchmarks also share from here a private redis-server (`PrivateRedis`) and what
``/proc`` tells about processes (`children_of`, `descendants_of`, `processes_mentioning`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import requests

from faktry import migrate
from faktry.config import Settings
from faktry.procs import die_with_parent
from faktry.tenancy import create_api_key, create_tenant
from quotas import ledger
from quotas.models import MILLI
from tests import services as svc

ROOT = Path(__file__).resolve().parents[1]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _own_group_dies_with_parent() -> None:
    """Runs in the child before exec: its own process group, and SIGKILL from the kernel if
    the test run or benchmark dies first (a timeout's SIGKILL), so no server outlives it."""
    os.setsid()
    die_with_parent()


# -- processes, as Linux's /proc shows them ----------------------------------------------------


@dataclass(frozen=True)
class ProcessInfo:
    """One process's line in ``/proc/<pid>/stat``, the fields the tests look at."""

    pid: int
    name: str  # the kernel's command name, cut to 15 characters
    state: str  # "Z" for a zombie: it has exited and waits for its parent to reap it
    ppid: int
    pgid: int
    cpu_ticks: int  # user + system

    @property
    def alive(self) -> bool:
        return self.state != "Z"


def process(pid: int) -> ProcessInfo | None:
    """The process ``pid``, or None once it is gone (reaped)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (name) state ppid pgrp ...": the name may hold spaces and ")", so split after the
    # last ")". fields[0] is stat field 3; utime and stime are fields 14 and 15.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        name=raw[raw.index("(") + 1 : raw.rindex(")")],
        state=fields[0],
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
    )


def processes() -> Iterator[ProcessInfo]:
    """Every process on the machine (those that end meanwhile are left out)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := process(int(entry.name))) is not None:
            yield info


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting to be reaped."""
    info = process(pid)
    return info is not None and info.alive


def children_of(pid: int, *, name: str | None = None, zombies: bool = False) -> list[int]:
    """Direct children of ``pid``, only those called ``name`` if given; zombies too if asked."""
    return [
        p.pid
        for p in processes()
        if p.ppid == pid and (name is None or p.name == name) and (zombies or p.alive)
    ]


def descendants_of(pid: int) -> list[int]:
    """Live children of ``pid``, their children, and so on."""
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def processes_mentioning(text: str, name: str) -> list[int]:
    """Pids of live processes whose program's path contains ``name`` and whose command line
    mentions ``text``."""
    found = []
    for p in processes():
        if not p.alive:
            continue  # a zombie waits for its parent, it runs nothing
        try:
            raw = Path(f"/proc/{p.pid}/cmdline").read_bytes()
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if name in cmdline.split(" ", 1)[0] and text in cmdline:
            found.append(p.pid)
    return found


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the processes in a process group."""
    return sum(p.cpu_ticks for p in processes() if p.pgid == pgid) / _CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process group and of every live descendant in a group of its
    own (a supervisor starts each worker process in its own session)."""
    every = {p.pid: p for p in processes()}
    group = {q for q, p in every.items() if p.pgid == pid}
    tree = group | {d for d in descendants_of(pid) if d in every}
    return sum(every[q].cpu_ticks for q in tree) / _CLOCK_TICKS


class Proc:
    """A child in its own process group, logging to a file; `stop` ends the whole group."""

    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.fh = self.log.open("wb")
        self.popen = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_own_group_dies_with_parent,
        )  # fmt: skip

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.popen.pid)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait()
        self.kill(signal.SIGKILL)  # anything left in the group
        self.fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


class PrivateRedis:
    """A redis-server of its own on a free port, saving nothing: its command counts are its
    user's alone, and it can be killed as in a crash and started again, empty, on the same
    port without touching anything else on the machine. As a context manager it is started
    on entry and stopped on exit.

    Without ``executable``, the redis-server on PATH; where there is none, the test is
    skipped (failed in CI)."""

    def __init__(self, directory: Path, executable: str | None = None) -> None:
        found = executable or shutil.which("redis-server")
        if found is None:
            svc.missing("redis-server")
            raise RuntimeError("redis-server is not available")
        self.executable = found
        self.directory = directory
        self.port = svc.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, empty) and wait until it answers."""
        cmd = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.directory)]  # fmt: skip
        self.proc = Proc("redis", cmd, dict(os.environ), self.directory)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.popen.poll() is None:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.5)
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.02)
            finally:
                client.close()
        raise RuntimeError(f"private redis-server did not start:\n{self.proc.output()}")

    def kill(self) -> None:
        """SIGKILL, as in a crash: whatever it held is gone."""
        if self.proc is not None:
            self.proc.kill(signal.SIGKILL)
            self.proc.popen.wait()
            self.proc.fh.close()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


class Platform:
    """faktry's own processes (web, workers, scheduler), configured only through FAKTRY_*."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.base = f"http://127.0.0.1:{settings.port}"
        self.env = {
            **os.environ,
            **settings.to_env(),
            "dramatiq_worker_timeout": str(settings.worker_timeout_ms),
        }
        self.procs: list[Proc] = []

    def start(self, name: str, *args: str) -> Proc:
        proc = Proc(name, [sys.executable, "-m", "faktry.cli", *args], self.env, self.log_dir)
        self.procs.append(proc)
        return proc

    def start_web(self) -> Proc:
        return self.start("web", "web")

    def start_worker(self, processes: int = 1, threads: int = 2, *, kind: str | None = None) -> Proc:
        """Workers for every queue, or for one worker kind (``media``, ``ai``)."""
        args = ["--kind", kind] if kind else []
        return self.start("worker", "worker", *args, "--processes", str(processes), "--threads", str(threads))

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("faktry web did not come up:\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.output()}" for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def tenant_key(settings: Settings) -> dict[str, str]:
    with svc.db_session(settings.resolved_database_url) as session:
        tenant, user = create_tenant(
            session, email=f"e2e-{uuid.uuid4().hex[:8]}@example.com", tier="studio", bcrypt_rounds=4
        )
        _, plain = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
        ledger.add_credits(session, tenant.id, 100 * MILLI, source="grant", key=f"e2e:{tenant.id}")
    return {"Authorization": f"Bearer {plain}"}


def e2e_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "var_dir": tmp_path / "var",
        "port": svc.free_port(),
        "secret_key": uuid.uuid4().hex,
        "bcrypt_rounds": 4,
        "web_workers": 1,
        "web_threads": 4,
        "job_heartbeat_seconds": 0.2,
        "job_lease_seconds": 2.0,
        "broker_heartbeat_ms": 3000,
        "broker_maintenance_chance": 1_000_000,
        "worker_timeout_ms": 50,
        "sweep_interval_seconds": 1.0,
        "retry_min_backoff_ms": 100,
        "retry_max_backoff_ms": 500,
        "max_upload_bytes": 8 * 1024 * 1024,
        "worker_shutdown_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=svc.free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@contextlib.contextmanager
def web_on_postgres(tmp: Path, label: str, **overrides: Any) -> Iterator[tuple[Platform, Settings]]:
    """A real ``faktry web`` alone (no workers), started and healthy, on a fresh PostgreSQL
    database and a Redis namespace of its own, both removed afterwards."""
    if not svc.redis_available():
        svc.missing("Redis")
    namespace = f"faktry-{label}-{svc.RUN_ID}-{uuid.uuid4().hex[:6]}"
    with svc.postgres_database() as pg_url:
        migrate.upgrade(pg_url)
        settings = e2e_settings(
            tmp,
            database_url=pg_url,
            redis_url=svc.REDIS_URL,
            redis_namespace=namespace,
            web_workers=1,
            **overrides,
        )
        platform = Platform(settings, tmp)
        try:
            platform.start_web()
            platform.wait_healthy()
            yield platform, settings
        finally:
            platform.stop()
            svc.clear_namespace(namespace)


@contextlib.contextmanager
def production_platform(
    tmp: Path, s3_server: str, *, redis_url: str | None = None, worker_processes: int = 1, **overrides: Any
) -> Iterator[Platform]:
    """PostgreSQL + Redis + S3 (moto), as a production deployment would be configured:
    web, scheduler and one worker of ``worker_processes``, stopped (with everything they
    started) on exit. Redis is the shared one, under a namespace of this platform's own that
    is cleared on exit, unless ``redis_url`` names one (a `PrivateRedis`) to use whole."""
    if redis_url is None and not svc.redis_available():
        svc.missing("Redis")
    bucket = f"faktry-e2e-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)  # fmt: skip
    namespace = f"faktry-e2e-{svc.RUN_ID}-{uuid.uuid4().hex[:6]}" if redis_url is None else "faktry"
    with svc.postgres_database() as pg_url:
        migrate.upgrade(pg_url)
        settings = e2e_settings(
            tmp,
            database_url=pg_url,
            redis_url=redis_url or svc.REDIS_URL,
            redis_namespace=namespace,
            storage_url=f"s3://{bucket}/media",
            s3_endpoint_url=s3_server,
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
            **overrides,
        )
        platform = Platform(settings, tmp)
        try:
            platform.start_web()
            platform.start("scheduler", "scheduler")
            platform.start_worker(processes=worker_processes)
            platform.wait_healthy()
            yield platform
        finally:
            platform.stop()
            if redis_url is None:
                svc.clear_namespace(namespace)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Platform]:
    with production_platform(tmp_path_factory.mktemp("production"), s3_server) as platform:
        yield platform


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("production", "zero_setup", "site"):
            value = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            # A fixture may yield the platform alone or first among other things.
            for part in value if isinstance(value, tuple) else (value,):
                if hasattr(part, "logs"):
                    report.sections.append((f"{name} logs", part.logs()))
