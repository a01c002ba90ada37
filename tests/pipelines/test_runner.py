"""The runner's guarantees: fenced attempts, one set of outputs, stable failure codes, retries."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from faktry import clock
from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job, JobOutput
from storage.models import File
from tests.web.helpers import upload


@pytest.fixture
def ctx(runtime):
    return runtime.context


def _submit(client, tenant, file_id, params=None, type_="video.transcode"):
    body = {
        "type": type_,
        "input": {"file_id": file_id},
        "params": {"preset": "mp4_360p"} if params is None else params,
    }
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    return r.json["id"]


def _job(ctx, job_id) -> Job:
    with transaction(ctx.sessions) as s:
        return s.scalars(select(Job).where(Job.id == job_id)).one()


def _stored_files(settings) -> list[Path]:
    root = Path(settings.resolved_storage_url.removeprefix("file:"))
    return [p for p in root.rglob("*") if p.is_file() and "/jobs/" in str(p)]


def test_two_concurrent_deliveries_leave_one_set_of_outputs(client, tenant, clip_small, ctx, settings):
    job_id = _submit(client, tenant, upload(client, tenant, clip_small).json["id"])
    barrier = threading.Barrier(2)
    errors = []

    def deliver():
        barrier.wait()
        try:
            runner.run(ctx, job_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    job = _job(ctx, job_id)
    assert job.status == "succeeded" and job.attempts == 1
    with transaction(ctx.sessions) as s:
        assert len(s.scalars(select(JobOutput).where(JobOutput.job_id == job_id)).all()) == 1
        assert len(s.scalars(select(File).where(File.job_id == job_id)).all()) == 1
    assert len(_stored_files(settings)) == 1


def test_a_redelivered_message_for_a_finished_job_does_nothing(client, tenant, clip_small, ctx, settings):
    job_id = _submit(client, tenant, upload(client, tenant, clip_small).json["id"])
    runner.run(ctx, job_id)
    before = _job(ctx, job_id)
    runner.run(ctx, job_id)
    after = _job(ctx, job_id)
    assert after.status == "succeeded" and after.attempts == before.attempts == 1
    assert after.finished_at == before.finished_at
    assert len(_stored_files(settings)) == 1


def test_an_attempt_that_lost_its_lease_discards_its_outputs(
    client, tenant, clip_small, ctx, settings, monkeypatch
):
    """Worker A stalls past its lease; B takes over and succeeds; A's late result is thrown away."""
    job_id = _submit(client, tenant, upload(client, tenant, clip_small).json["id"])
    real_store = runner._store_outputs
    took_over = threading.Event()

    def stalled_store(c, claim, outputs):
        stored = real_store(c, claim, outputs)
        if claim.attempt == 1:
            # The lease runs out while A is "stalled"; a second delivery takes the job.
            with transaction(ctx.sessions) as s:
                s.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(lease_expires_at=clock.now() - timedelta(seconds=1))
                )
            monkeypatch.setattr(runner.Heartbeat, "beat", lambda self: None)
            second = threading.Thread(target=runner.run, args=(ctx, job_id))
            second.start()
            second.join()
            took_over.set()
        return stored

    monkeypatch.setattr(runner, "_store_outputs", stalled_store)
    runner.run(ctx, job_id)
    assert took_over.is_set()
    job = _job(ctx, job_id)
    assert job.status == "succeeded" and job.attempts == 2
    with transaction(ctx.sessions) as s:
        [out] = s.scalars(select(JobOutput).where(JobOutput.job_id == job_id)).all()
        assert out.attempt == 2
    files = _stored_files(settings)
    assert len(files) == 1 and "/a2/" in str(files[0])


def test_bad_media_fails_at_once_with_a_stable_code(client, tenant, clip_small, ctx, settings):
    file_id = upload(client, tenant, clip_small).json["id"]
    # Corrupt the stored bytes after upload, as a disk or a bad copy might.
    with transaction(ctx.sessions) as s:
        key = s.get(File, file_id).storage_key
    stored = Path(settings.resolved_storage_url.removeprefix("file:")) / key
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) // 3])
    job_id = _submit(client, tenant, file_id)
    runner.run(ctx, job_id)
    job = _job(ctx, job_id)
    assert job.status == "failed" and job.attempts == 1
    assert job.error_code == "invalid_media"
    assert not _stored_files(settings)
    assert not list(settings.tmp_dir.glob(f"{job_id}*"))


def test_a_transient_error_requeues_and_then_fails_when_attempts_are_spent(
    client, tenant, clip_small, ctx, monkeypatch
):
    from faktry.errors import ProcessingFailed
    from pipelines import jobtypes

    job_id = _submit(client, tenant, upload(client, tenant, clip_small).json["id"], {}, "media.probe")

    def flaky(step_ctx):
        raise ProcessingFailed("the encoder crashed")

    monkeypatch.setitem(
        jobtypes.JOB_TYPES, "media.probe", dataclasses.replace(jobtypes.JOB_TYPES["media.probe"], run=flaky)
    )
    for attempt in range(1, ctx.settings.max_retries + 1):
        with pytest.raises(runner.RetryLater):
            runner.run(ctx, job_id)
        job = _job(ctx, job_id)
        assert job.status == "queued" and job.attempts == attempt
    runner.run(ctx, job_id)
    job = _job(ctx, job_id)
    assert job.status == "failed" and job.error_code == "processing_failed"
    assert job.attempts == ctx.settings.max_retries + 1


def test_a_job_whose_input_was_deleted_fails_cleanly(client, tenant, clip_small, ctx):
    file_id = upload(client, tenant, clip_small).json["id"]
    job_id = _submit(client, tenant, file_id)
    assert client.delete(f"/v1/files/{file_id}", headers=tenant.headers).status_code == 204
    runner.run(ctx, job_id)
    job = _job(ctx, job_id)
    assert job.status == "failed" and job.error_code == "input_missing"
