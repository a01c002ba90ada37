"""The chaos suite's harness: a platform in real processes, a client that submits a mixed
burst the way a careful client does, faults, and the checks every fault must pass.

A careful client sends each job once with its own ``Idempotency-Key`` and, when the
platform answers 503 or 429 or the connection drops, sends the same request again with the
same key. Whatever the fault, every job such a client saw accepted must reach a final
status within the recovery bound, with at most one set of outputs and one charge, and the
ledger and storage checks must stay clean.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from faktry.config import Settings
from pipelines.models import FINISHED, Job, JobOutput
from quotas.models import Hold
from tests import services as svc
from tests.platform import ROOT, Platform, PrivateRedis, Proc, processes_mentioning, production_platform

#: Every accepted job must be final this long after the fault (the platform's own bound,
#: with the chaos settings below, is a few seconds; the rest is the work itself).
RECOVERY_BOUND = 120.0
ARTIFACTS = ROOT / "test-artifacts" / "chaos"

#: Short windows so that recovery is quick to watch: the same code runs with the defaults.
CHAOS_SETTINGS: dict[str, Any] = {
    "requeue_after_seconds": 3.0,
    "sweep_interval_seconds": 1.0,
    "job_lease_seconds": 2.0,
    "job_heartbeat_seconds": 0.2,
    "broker_heartbeat_ms": 3000,
    "broker_maintenance_chance": 1_000_000,
    "db_retry_seconds": 0.1,
    "worker_shutdown_seconds": 2.0,
    "retry_min_backoff_ms": 100,
    "retry_max_backoff_ms": 1000,
    "max_retries": 8,
    "web_workers": 2,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.slow)


# -- the client ------------------------------------------------------------------------------


@dataclass
class Burst:
    """Submits ``bodies`` one after another from a thread, retrying as a careful client does."""

    base: str
    headers: dict[str, str]
    bodies: list[dict[str, Any]]
    pause: float = 0.05
    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Burst:
        self.thread.start()
        return self

    def join(self, timeout: float = 300.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the burst did not finish"

    def _run(self) -> None:
        for i, body in enumerate(self.bodies):
            self._submit(f"chaos-{self.run_id}-{i}", body)
            time.sleep(self.pause)

    def _submit(self, key: str, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + 120
        headers = {**self.headers, "Idempotency-Key": key}
        while time.monotonic() < deadline:
            try:
                r = requests.post(f"{self.base}/v1/jobs", json=body, headers=headers, timeout=30)
            except requests.RequestException:
                time.sleep(0.3)  # the server is away (restarting): the same request again
                continue
            self.statuses[r.status_code] += 1
            if r.status_code == 202:
                self.accepted[key] = r.json()["id"]
                return
            if r.status_code in (429, 503):
                time.sleep(min(float(r.headers.get("Retry-After", "1")), 2.0))
                continue
            if r.status_code >= 500:
                self.server_errors.append(f"{r.status_code} {r.text[:300]}")
                time.sleep(0.3)
                continue
            self.refused.append(f"{r.status_code} {r.text[:300]}")
            return
        self.refused.append(f"gave up on {key}")


# -- the processes ---------------------------------------------------------------------------


def cli(settings: Settings, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faktry.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the checks ------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    accepted: int
    recovery_seconds: float
    statuses: dict[str, int]


def wait_final(url: str, job_ids: list[str], bound: float) -> float:
    """Seconds until every job is final; fails past ``bound``."""
    started = time.monotonic()
    while True:
        with svc.db_session(url) as session:
            left = session.scalars(
                select(Job.id).where(Job.id.in_(job_ids), Job.status.not_in(FINISHED))
            ).all()
        if not left:
            return time.monotonic() - started
        if time.monotonic() - started > bound:
            with svc.db_session(url) as session:
                rows = session.execute(
                    select(Job.id, Job.status, Job.attempts, Job.enqueued_at, Job.lease_expires_at).where(
                        Job.id.in_(left[:10])
                    )
                ).all()
            raise AssertionError(f"{len(left)} accepted jobs are not final after {bound:.0f} s: {rows}")
        time.sleep(0.25)


def check_jobs(url: str, job_ids: list[str]) -> dict[str, int]:
    """Each job: at most one set of outputs (one attempt's, one per name) and one hold,
    captured for what it was charged if it succeeded, released otherwise."""
    with svc.db_session(url) as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        outputs = session.execute(
            select(JobOutput.job_id, JobOutput.name, JobOutput.attempt).where(JobOutput.job_id.in_(job_ids))
        ).all()
        holds = session.execute(
            select(Hold.job_id, Hold.status, Hold.captured).where(Hold.job_id.in_(job_ids))
        ).all()
    assert len(jobs) == len(job_ids)
    by_job: dict[str, list[tuple[str, int]]] = {}
    for job_id, name, attempt in outputs:
        by_job.setdefault(job_id, []).append((name, attempt))
    held: dict[str, list[tuple[str, int | None]]] = {}
    for job_id, status, captured in holds:
        held.setdefault(job_id, []).append((status, captured))
    for job_id, job in jobs.items():
        outs = by_job.get(job_id, [])
        assert len({attempt for _, attempt in outs}) <= 1, (job_id, outs)
        assert len(outs) == len({name for name, _ in outs}), (job_id, outs)
        assert len(held.get(job_id, [])) == 1, (job_id, held.get(job_id))
        [(status, captured)] = held[job_id]
        if job.status == "succeeded":
            assert outs or job.type == "media.probe", f"{job_id} succeeded without outputs"
            assert status == "captured" and captured == job.cost_charged, (job_id, status, captured)
        else:
            assert not outs, (job_id, job.status, outs)
            assert status == "released" and not job.cost_charged, (job_id, job.status, status)
    return dict(Counter(j.status for j in jobs.values()))


def check_platform(settings: Settings, env: dict[str, str], tmp_root: Path, procs: list[Proc]) -> None:
    """Ledger and storage checks clean, every process up, no ffmpeg and no temp left."""
    ledger = cli(settings, env, "ledger", "check")
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
    storage = cli(settings, env, "storage", "check")
    assert storage.returncode == 0, storage.stdout + storage.stderr
    for proc in procs:
        assert proc.popen.poll() is None, f"{proc.name} exited for good:\n{proc.output()}"
    deadline = time.monotonic() + 10
    while processes_mentioning(str(tmp_root), "ffmpeg") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_mentioning(str(tmp_root), "ffmpeg"), "ffmpeg outlived its job"
    tmp_dir = settings.tmp_dir
    deadline = time.monotonic() + 5 * settings.sweep_interval_seconds + 5
    while any(tmp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(tmp_dir.iterdir()), f"left in the temp folder: {list(tmp_dir.iterdir())}"


def record(outcome: Outcome) -> None:
    """Keep each scenario's recovery time for bench/RESULTS.md."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "recovery.jsonl"
    with path.open("a") as fh:
        fh.write(json.dumps(outcome.__dict__) + "\n")
    print(
        f"\nchaos {outcome.name}: {outcome.accepted} accepted, final within {outcome.recovery_seconds:.1f} s"
    )


def bodies(inputs: dict[str, str], n: int) -> list[dict[str, Any]]:
    """A mix of image, probe, thumbnail and transcode jobs over the uploaded inputs."""
    kinds = [
        {
            "type": "image.resize",
            "input": {"file_id": inputs["image"]},
            "params": {"width": 16, "height": 16},
        },
        {"type": "media.probe", "input": {"file_id": inputs["clip"]}},
        {"type": "video.thumbnail", "input": {"file_id": inputs["clip"]}, "params": {"at_fraction": 0.5}},
        {"type": "video.transcode", "input": {"file_id": inputs["clip"]}, "params": {"preset": "mp4_360p"}},
        {"type": "video.transcode", "input": {"file_id": inputs["clip"]}, "params": {"preset": "audio_mp3"}},
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def upload(base: str, headers: dict[str, str], path: Path) -> str:
    with path.open("rb") as fh:
        r = requests.post(f"{base}/v1/files", headers=headers, files={"file": (path.name, fh)}, timeout=60)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@contextlib.contextmanager
def production(tmp: Path, s3_server: str) -> Iterator[tuple[Platform, PrivateRedis]]:
    """PostgreSQL, a private Redis, S3 (moto); web, scheduler and a worker of two processes."""
    with (
        PrivateRedis(tmp) as redis_server,
        production_platform(
            tmp, s3_server, redis_url=redis_server.url, worker_processes=2, **CHAOS_SETTINGS
        ) as platform,
    ):
        yield platform, redis_server


Fault = Callable[[Platform, PrivateRedis], None]
