"""A workflow run survives the processes that carry it: kill -9 of a worker process, of a
whole worker and of the scheduler, mid-run. The run still finishes, each step got exactly
one job (with at most one set of outputs and one charge), the run's own hold is released,
and the ledger and storage checks are clean.

The run advances only through the database: a job's end marks its step in the same
transaction, and the call that advances the run after the commit, if its process dies, is
made by the restarted scheduler's reconciler (pipelines/workflows/runs.py `sweep`)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from sqlalchemy import select

from quotas.models import Hold
from tests import services as svc
from tests.chaos.conftest import (
    RECOVERY_BOUND,
    Outcome,
    check_jobs,
    check_platform,
    production,
    record,
    upload,
)
from tests.chaos.test_chaos import _worker, _worker_children
from tests.platform import tenant_key

ITEMS = 8


def _graph() -> dict[str, Any]:
    """Frames resized, each resize resized again (two fan-outs of eight), and a clip
    transcoded then thumbnailed: long enough to be killed in the middle of."""
    return {
        "inputs": {"frames": {"kind": "image", "list": True}, "clip": {"kind": "video"}},
        "nodes": {
            "sizes": {
                "type": "image.resize", "params": {"width": 64, "height": 48},
                "input": {"file_id": {"input": "frames"}}, "map": "file_id",
            },
            "thumbs": {
                "type": "image.resize", "params": {"width": 16, "height": 12},
                "input": {"file_id": {"node": "sizes"}}, "map": "file_id",
            },
            "p360": {
                "type": "video.transcode", "params": {"preset": "mp4_360p"}, "input": {"file_id": {"input": "clip"}},
            },
            "poster": {
                "type": "video.thumbnail", "params": {"at_fraction": 0.5},
                "input": {"file_id": {"node": "p360", "output": 0}},
            },
        },
    }  # fmt: skip


def _frames(tmp: Path) -> list[Path]:
    made = []
    for i in range(ITEMS):
        path = tmp / f"frame{i}.png"
        Image.new("RGB", (160, 120), (30 * i, 90, 160)).save(path)
        made.append(path)
    return made


def _run(base: str, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    r = requests.get(f"{base}/v1/workflow-runs/{run_id}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _wait(
    base: str, headers: dict[str, str], run_id: str, done: Any, bound: float, what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + bound
    while True:
        try:
            run = _run(base, headers, run_id)
            if done(run):
                return run
        except requests.RequestException:
            pass  # the web is fine; a blip of the test's own connection
        assert time.monotonic() < deadline, f"{what} after {bound:.0f} s"
        time.sleep(0.2)


def _succeeded_steps(run: dict[str, Any]) -> int:
    return sum(
        1 for node in run.get("nodes", {}).values() for s in node["steps"] if s["status"] == "succeeded"
    )


def finished_exactly_once(platform: Any, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    """The run, once it has ended: succeeded, each step with one job of its own that
    succeeded once (one set of outputs, one charge), the run's own hold released and the run
    charged what its steps cost."""
    run = _wait(
        platform.base,
        headers,
        run_id,
        lambda run: run["status"] != "running",
        RECOVERY_BOUND,
        "still running",
    )
    assert run["status"] == "succeeded", run
    steps = [s for node in run["nodes"].values() for s in node["steps"]]
    assert all(s["status"] == "succeeded" and s["job_id"] for s in steps)
    job_ids = [s["job_id"] for s in steps]
    assert len(set(job_ids)) == len(job_ids)
    url = platform.settings.resolved_database_url
    with svc.db_session(url) as session:
        from pipelines.models import Job

        made = set(session.scalars(select(Job.id).where(Job.run_id == run_id)))
        run_hold = session.execute(select(Hold.status).where(Hold.job_id == run_id)).scalars().all()
    assert made == set(job_ids)
    assert check_jobs(url, job_ids) == {"succeeded": len(job_ids)}
    assert run_hold == ["released"]
    assert run["cost"]["charged"] == sum(s["cost"] for s in steps) > 0
    return run


def test_a_run_finishes_through_kill_9_of_workers_and_the_scheduler(tmp_path, s3_server, long_clip):
    with production(tmp_path, s3_server) as (platform, _redis):
        headers = tenant_key(platform.settings)
        frames = [upload(platform.base, headers, p) for p in _frames(tmp_path)]
        clip = upload(platform.base, headers, long_clip)
        r = requests.post(
            f"{platform.base}/v1/workflow-runs",
            json={"graph": _graph(), "inputs": {"frames": frames, "clip": clip}},
            headers={**headers, "Idempotency-Key": "chaos-run"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]

        # Mid-run: some steps done, the transcode under way. A worker process dies first.
        _wait(platform.base, headers, run_id, lambda run: _succeeded_steps(run) >= 2, 60, "no step finished")
        worker = _worker(platform)
        fault_at = time.monotonic()
        victim = _worker_children(worker)[0]
        import os

        os.kill(victim, signal.SIGKILL)
        # Then the whole worker, and the scheduler, at once: nothing carries the run.
        [scheduler] = [p for p in platform.procs if p.name == "scheduler"]
        worker.kill(signal.SIGKILL)
        scheduler.kill(signal.SIGKILL)
        worker.popen.wait()
        scheduler.popen.wait()
        time.sleep(1)
        platform.start_worker(processes=2, threads=2)  # as a process manager starts them again
        platform.start("scheduler", "scheduler")

        run = finished_exactly_once(platform, headers, run_id)
        steps = [s for node in run["nodes"].values() for s in node["steps"]]
        assert len(steps) == ITEMS * 2 + 2
        retired = (worker, scheduler)
        check_platform(
            platform.settings, platform.env, platform.log_dir, [p for p in platform.procs if p not in retired]
        )
        record(Outcome("w: a workflow run through kill -9 of workers and the scheduler", len(steps),
                       round(time.monotonic() - fault_at, 1), {"succeeded": len(steps)}))  # fmt: skip
