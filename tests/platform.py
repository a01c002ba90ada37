"""A running faktry in real processes, as a pytest plugin: the web server (gunicorn),
Dramatiq workers, the scheduler, ``faktry up``.

Every process starts in its own process group and is stopped with it, ffmpeg children
included; logs go to files under the test's temp folder and are printed when a test fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from faktry import migrate
from faktry.config import Settings
from faktry.tenancy import create_api_key, create_tenant
from quotas import ledger
from quotas.models import MILLI
from tests import services as svc

ROOT = Path(__file__).resolve().parents[1]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _prctl() -> Any:
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    return None


_PRCTL = _prctl()  # resolved in the parent: a child must not load libraries after fork


def _own_group_dies_with_parent() -> None:
    """Runs in the child before exec: its own process group, and SIGKILL from the kernel if
    the test run or benchmark dies first (a timeout's SIGKILL), so no server outlives it."""
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live processes in a process group (Linux /proc)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        # fields[0] is the state (stat field 3): pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


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
        return group_cpu_seconds(self.popen.pid)

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
def production_platform(tmp: Path, s3_server: str, **overrides: Any) -> Iterator[Platform]:
    """PostgreSQL + Redis + S3 (moto), as a production deployment would be configured:
    web, scheduler and one worker, stopped (with everything they started) on exit."""
    if not svc.redis_available():
        svc.missing("Redis")
    bucket = f"faktry-e2e-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)  # fmt: skip
    namespace = f"faktry-e2e-{svc.RUN_ID}-{uuid.uuid4().hex[:6]}"
    with svc.postgres_database() as pg_url:
        migrate.upgrade(pg_url)
        settings = e2e_settings(
            tmp,
            database_url=pg_url,
            redis_url=svc.REDIS_URL,
            redis_namespace=namespace,
            storage_url=f"s3://{bucket}/media",
            s3_endpoint_url=s3_server,
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
            **overrides,
        )
        platform = Platform(settings, tmp)
        try:
            platform.start("web", "web")
            platform.start("scheduler", "scheduler")
            platform.start_worker()
            platform.wait_healthy()
            yield platform
        finally:
            platform.stop()
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
            platform = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if platform is not None:
                report.sections.append((f"{name} logs", platform.logs()))
