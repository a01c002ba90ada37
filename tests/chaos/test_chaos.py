"""Faults a production deployment meets, each during a mixed burst of jobs: workers killed,
Redis lost, database connections cut, a worker stopped mid-transcode, the scheduler killed,
and on the zero-setup default the whole ``faktry up`` tree killed and started again.

After each, every accepted job is final within the recovery bound with at most one set of
outputs and one charge, the ledger and storage checks are clean, no faktry process exited
for good, no ffmpeg and no temp folder is left, and no request was answered 500.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import text

from tests import services as svc
from tests.chaos.conftest import (
    CHAOS_SETTINGS,
    RECOVERY_BOUND,
    Burst,
    Outcome,
    bodies,
    check_jobs,
    check_platform,
    production,
    record,
    upload,
    wait_final,
)
from tests.platform import Platform, Proc, children_of, descendants_of, e2e_settings, tenant_key


def _inputs(platform: Platform, headers: dict[str, str], png: Path, clip: Path) -> dict[str, str]:
    return {"image": upload(platform.base, headers, png), "clip": upload(platform.base, headers, clip)}


def _wait_accepted(burst: Burst, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(burst.accepted) < n:
        assert time.monotonic() < deadline, f"only {len(burst.accepted)} accepted: {burst.statuses}"
        time.sleep(0.05)


def _settle(
    name: str, platform: Platform, burst: Burst, fault_at: float, retired: tuple[Proc, ...] = ()
) -> None:
    """Wait for every accepted job and run every check; ``retired`` are processes the
    scenario killed for good on purpose and replaced, as a process manager would."""
    burst.join()
    assert not burst.server_errors, burst.server_errors[:5]
    assert not burst.refused, burst.refused[:5]
    ids = list(burst.accepted.values())
    assert len(ids) == len(burst.bodies)
    wait_final(platform.settings.resolved_database_url, ids, RECOVERY_BOUND)
    recovery = time.monotonic() - fault_at
    statuses = check_jobs(platform.settings.resolved_database_url, ids)
    assert statuses.get("succeeded", 0) == len(ids), statuses
    check_platform(
        platform.settings, platform.env, platform.log_dir, [p for p in platform.procs if p not in retired]
    )
    record(Outcome(name, len(ids), round(recovery, 1), statuses))


def _worker(platform: Platform) -> Proc:
    [worker] = [p for p in platform.procs if p.name == "worker" and p.popen.poll() is None]
    return worker


def _worker_children(worker: Proc, n: int = 2, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        kids = children_of(worker.popen.pid)
        if len(kids) >= n:
            return kids
        assert time.monotonic() < deadline, "the worker's processes did not start"
        time.sleep(0.1)


def test_worker_processes_killed_with_sigkill(tmp_path, s3_server, png_image, clip_small):
    with production(tmp_path, s3_server) as (platform, _):
        headers = tenant_key(platform.settings)
        inputs = _inputs(platform, headers, png_image, clip_small)
        burst = Burst(platform.base, headers, bodies(inputs, 40)).start()
        _wait_accepted(burst, 8)
        worker = _worker(platform)
        victim = _worker_children(worker)[0]
        fault_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)  # what the OOM killer does
        _wait_accepted(burst, 20)
        # A replacement took the dead process's place; the supervisor stayed up.
        kids = _worker_children(worker)
        assert victim not in kids and worker.popen.poll() is None
        worker.kill(signal.SIGKILL)  # now the whole worker, supervisor and processes
        worker.popen.wait()
        time.sleep(1)
        platform.start_worker(processes=2, threads=2)  # as a process manager starts it again
        _settle(
            "a: kill -9 of a worker process, then of a whole worker", platform, burst, fault_at, (worker,)
        )


def test_redis_killed_and_restarted_empty(tmp_path, s3_server, png_image, clip_small):
    with production(tmp_path, s3_server) as (platform, redis_server):
        headers = tenant_key(platform.settings)
        inputs = _inputs(platform, headers, png_image, clip_small)
        burst = Burst(platform.base, headers, bodies(inputs, 40)).start()
        _wait_accepted(burst, 10)
        fault_at = time.monotonic()
        redis_server.kill()
        time.sleep(2)  # submits go on meanwhile: Redis is a fast path
        redis_server.start()  # empty: every queued message and admission list is gone
        _settle("b: Redis killed and restarted empty", platform, burst, fault_at)


def test_every_database_connection_terminated_several_times(tmp_path, s3_server, png_image, clip_small):
    with production(tmp_path, s3_server) as (platform, _):
        headers = tenant_key(platform.settings)
        inputs = _inputs(platform, headers, png_image, clip_small)
        burst = Burst(platform.base, headers, bodies(inputs, 40)).start()
        _wait_accepted(burst, 5)
        fault_at = time.monotonic()
        url = platform.settings.resolved_database_url
        database = url.rsplit("/", 1)[1]
        for _ in range(4):
            with svc.db_session(svc.PG_ADMIN_URL) as admin:
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                )
            time.sleep(0.7)
        _settle("c: every database connection terminated, four times", platform, burst, fault_at)


def test_sigterm_of_a_worker_mid_transcode(tmp_path, s3_server, png_image, clip_small, long_clip):
    with production(tmp_path, s3_server) as (platform, _):
        headers = tenant_key(platform.settings)
        inputs = _inputs(platform, headers, png_image, clip_small)
        long_id = upload(platform.base, headers, long_clip)
        long_body = {
            "type": "video.transcode",
            "input": {"file_id": long_id},
            "params": {"preset": "mp4_1080p"},
        }
        burst = Burst(platform.base, headers, [long_body, *bodies(inputs, 30)]).start()
        _wait_accepted(burst, 1)
        long_job = burst.accepted[next(iter(burst.accepted))]
        deadline = time.monotonic() + 60
        while (
            requests.get(f"{platform.base}/v1/jobs/{long_job}", headers=headers, timeout=10).json()[
                "progress"
            ]
            <= 0
        ):
            assert time.monotonic() < deadline, "the transcode never started"
            time.sleep(0.05)
        worker = _worker(platform)
        fault_at = time.monotonic()
        worker.kill(signal.SIGTERM)
        worker.popen.wait(timeout=platform.settings.worker_shutdown_seconds + 20)
        platform.start_worker(processes=2, threads=2)
        _settle("d: SIGTERM of a worker mid-transcode", platform, burst, fault_at, (worker,))


def test_scheduler_killed_with_sigkill(tmp_path, s3_server, png_image, clip_small):
    with production(tmp_path, s3_server) as (platform, redis_server):
        headers = tenant_key(platform.settings)
        inputs = _inputs(platform, headers, png_image, clip_small)
        burst = Burst(platform.base, headers, bodies(inputs, 30)).start()
        _wait_accepted(burst, 5)
        [scheduler] = [p for p in platform.procs if p.name == "scheduler"]
        fault_at = time.monotonic()
        scheduler.kill(signal.SIGKILL)
        scheduler.popen.wait()
        # Without a scheduler, lose some queue state too: only the restarted one can recover it.
        redis_server.kill()
        redis_server.start()
        time.sleep(2)
        platform.start("scheduler", "scheduler")  # as a process manager starts it again
        _settle(
            "e: kill -9 of the scheduler (with Redis emptied meanwhile)",
            platform,
            burst,
            fault_at,
            (scheduler,),
        )


def test_the_whole_zero_setup_tree_killed_and_started_again(tmp_path, png_image, clip_small):
    settings = e2e_settings(
        tmp_path,
        **CHAOS_SETTINGS,
        worker_processes=2,
    )
    env = {**os.environ, **settings.to_env()}
    for name in ("FAKTRY_DATABASE_URL", "FAKTRY_REDIS_URL", "FAKTRY_STORAGE_URL"):
        env.pop(name, None)
    env["FAKTRY_DATABASE_URL"] = ""
    env["FAKTRY_REDIS_URL"] = ""

    def up() -> Proc:
        proc = Proc("up", [sys.executable, "-m", "faktry.cli", "up"], env, tmp_path)
        platform.procs.append(proc)
        platform.wait_healthy(timeout=90)
        return proc

    platform = Platform(settings, tmp_path)
    platform.env = env
    try:
        first = up()
        headers = tenant_key(settings)
        inputs = _inputs(platform, headers, png_image, clip_small)
        burst = Burst(platform.base, headers, bodies(inputs, 40)).start()
        _wait_accepted(burst, 15)
        tree = [first.popen.pid, *descendants_of(first.popen.pid)]
        fault_at = time.monotonic()
        for pid in tree:  # the whole tree at once, embedded Redis and ffmpeg included
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.popen.wait()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in tree):
            assert time.monotonic() < deadline, "part of the killed tree lives on"
            time.sleep(0.1)
        up()
        _settle(
            "f: kill -9 of the whole faktry up tree, then faktry up again",
            platform,
            burst,
            fault_at,
            (first,),
        )
    finally:
        platform.stop()
        subprocess.run(["pkill", "-9", "-f", str(tmp_path)], check=False)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
