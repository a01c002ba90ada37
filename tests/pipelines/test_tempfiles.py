"""Nothing under the temp folder outlives its attempt or its process by more than a sweep."""

from __future__ import annotations

import os
import time

from pipelines import runner, tempfiles
from pipelines.reconcile import reconcile
from tests.web.helpers import upload


def _job(client, tenant, png_image):
    file_id = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    return client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]


def _folder(tmp, job_id, attempt, token):
    folder = tempfiles.attempt_dir(tmp, job_id, attempt, token)
    (folder / "out").mkdir(parents=True)
    (folder / "out" / "partial.mp4").write_bytes(b"\0" * 1024)
    return folder


def test_only_the_folder_of_a_running_attempt_stays(client, make_tenant, png_image, runtime):
    ctx = runtime.context
    tmp = ctx.settings.tmp_dir
    tenant = make_tenant("studio", credits=100)
    running = _job(client, tenant, png_image)
    claim = runner.claim(ctx, running)
    assert claim is not None
    live = _folder(tmp, running, claim.attempt, claim.token)
    stale_token = _folder(tmp, running, claim.attempt, "0" * 32)  # an earlier lease of the same attempt
    queued = _job(client, tenant, png_image)
    dead = _folder(tmp, queued, 1, "ab" * 16)  # its worker was killed; the job went back to the queue
    unknown = _folder(tmp, "job_" + "f" * 24, 1, "cd" * 16)  # a job that no longer exists
    assert tempfiles.sweep(ctx.sessions, tmp) == 3
    assert live.exists() and not stale_token.exists() and not dead.exists() and not unknown.exists()


def test_other_temp_files_go_once_idle_and_no_process_holds_them(runtime):
    ctx = runtime.context
    tmp = ctx.settings.tmp_dir
    tmp.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600
    idle, held, fresh = tmp / "upload-idle", tmp / "faktry-held.mp4", tmp / "upload-fresh"
    for path in (idle, held, fresh):
        path.write_bytes(b"x")
    os.utime(idle, (old, old))
    os.utime(held, (old, old))
    with held.open("rb"):
        assert tempfiles.sweep(ctx.sessions, tmp, idle_seconds=60) == 1
    assert not idle.exists() and held.exists() and fresh.exists()


def test_a_starting_worker_and_each_reconciler_pass_sweep(client, make_tenant, png_image, runtime):
    ctx = runtime.context
    tmp = ctx.settings.tmp_dir
    tenant = make_tenant("studio", credits=100)
    job_id = _job(client, tenant, png_image)
    first = _folder(tmp, job_id, 1, "12" * 16)
    runtime.broker.emit_after("process_boot")
    assert not first.exists()
    second = _folder(tmp, job_id, 2, "34" * 16)
    report = reconcile(ctx.sessions, runtime_sender(), ctx.storage, ctx.settings)
    assert report.temp_removed == 1 and not second.exists()


def runtime_sender():
    class Nothing:
        def send(self, queue, job_id):
            raise AssertionError("nothing is sent here")

    return Nothing()
