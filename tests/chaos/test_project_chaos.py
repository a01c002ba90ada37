"""A video project's render survives kill -9 of the whole worker while ffmpeg is rendering:
the render job is taken up again by a new worker, the run finishes with exactly one video
(and its SRT) in the library, every step got one job, and the money is exact: the run
charged what its steps cost, its hold is released, and the ledger and storage checks are
clean."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from sqlalchemy import select

from tests import services as svc
from tests.chaos.conftest import (
    Outcome,
    check_platform,
    production,
    record,
    upload,
)
from tests.chaos.test_chaos import _worker
from tests.chaos.test_workflow_chaos import _wait, finished_exactly_once
from tests.platform import tenant_key


def _still(tmp: Path) -> Path:
    path = tmp / "still.png"
    Image.new("RGB", (720, 1280), (30, 80, 120)).save(path)
    return path


def _project(still_id: str) -> dict[str, Any]:
    """Long enough scenes that the render is under way for a few seconds."""
    return {
        "name": "Chaos cut",
        "format": "9:16",
        "target_seconds": 24,
        "music": {"prompt": "a steady beat"},
        "scenes": [
            {"script": "The first scene speaks over a generated still.",
             "media": {"prompt": "a lighthouse", "kind": "image"}, "duration": 8,
             "transition": {"type": "fade", "duration": 0.5}},
            {"script": "The second over a picture from the library.", "media": {"file_id": still_id},
             "duration": 8, "transition": {"type": "fade", "duration": 0.5}},
            {"script": "The third over a generated clip.", "media": {"prompt": "waves", "kind": "video"},
             "duration": 8},
        ],
    }  # fmt: skip


def _render_status(run: dict[str, Any]) -> str:
    steps = run.get("nodes", {}).get("render", {}).get("steps", [])
    return str(steps[0]["status"]) if steps else "waiting"


def test_a_render_killed_mid_ffmpeg_still_ends_in_one_video_and_exact_money(tmp_path, s3_server):
    with production(tmp_path, s3_server) as (platform, _redis):
        headers = tenant_key(platform.settings)
        still = upload(platform.base, headers, _still(tmp_path))
        r = requests.post(f"{platform.base}/v1/projects", json=_project(still), headers=headers, timeout=60)
        assert r.status_code == 201, r.text
        project_id = r.json()["id"]
        r = requests.post(f"{platform.base}/v1/projects/{project_id}/render", headers=headers, timeout=60)
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]

        # The render under way: every input made, ffmpeg running in a worker process.
        _wait(platform.base, headers, run_id, lambda run: _render_status(run) == "running", 180, "no render")
        worker = _worker(platform)
        fault_at = time.monotonic()
        worker.kill(signal.SIGKILL)  # the worker and its processes (and their ffmpeg) at once
        worker.popen.wait()
        time.sleep(1)
        platform.start_worker(processes=2, threads=2)

        run = finished_exactly_once(platform, headers, run_id)
        steps = [s for node in run["nodes"].values() for s in node["steps"]]
        [render_job] = run["nodes"]["render"]["steps"]

        url = platform.settings.resolved_database_url
        with svc.db_session(url) as session:
            from pipelines.models import Job
            from storage.models import File

            job = session.get(Job, render_job["job_id"])
            assert job is not None
            assert job.attempts >= 2, "the render was not under way when the worker was killed"
            outputs = session.execute(
                select(File.kind).where(File.job_id == job.id, File.root_id.is_(None))
            ).scalars().all()  # fmt: skip
        assert sorted(outputs) == ["subtitles", "video"]  # one video, one SRT: no copy of a half render
        project = requests.get(
            f"{platform.base}/v1/projects/{project_id}", headers=headers, timeout=30
        ).json()
        assert project["render"]["video_file_id"]
        check_platform(
            platform.settings, platform.env, platform.log_dir, [p for p in platform.procs if p is not worker]
        )
        record(Outcome("p: a project render through kill -9 of the worker mid-ffmpeg", len(steps),
                       round(time.monotonic() - fault_at, 1), {"succeeded": len(steps)}))  # fmt: skip
