"""Regressions: races and crash paths found in review, each shown to hold now."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

from faktry import clock
from faktry.db import transaction
from pipelines import runner
from pipelines.checks import storage_usage
from pipelines.models import Job
from pipelines.providers.base import Pending
from quotas.models import Account
from tests.web.helpers import upload


def test_two_concurrent_deletes_free_a_files_bytes_once(app, tenant, png_image, runtime):
    file_id = upload(app.test_client(), tenant, png_image).json["id"]
    upload(app.test_client(), tenant, png_image)
    barrier = threading.Barrier(2)
    codes = []

    def delete():
        client = app.test_client()
        barrier.wait()
        codes.append(client.delete(f"/v1/files/{file_id}", headers=tenant.headers).status_code)

    threads = [threading.Thread(target=delete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) in ([204, 404], [204, 204]) and codes.count(204) >= 1
    with transaction(runtime.context.sessions) as s:
        assert s.get(Account, tenant.id).storage_used_bytes == png_image.stat().st_size
        assert storage_usage(s, runtime.context.storage, tenant_id=tenant.id) == []


def test_a_job_canceled_after_a_crashed_attempt_keeps_no_files(client, tenant, clip_small, runtime, settings):
    ctx = runtime.context
    file_id = upload(client, tenant, clip_small).json["id"]
    job_id = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    ).json["id"]
    claim = runner.claim(ctx, job_id)
    leftover = f"t/{tenant.id}/jobs/{job_id}/a{claim.attempt}/media/out.bin"
    ctx.storage.put_stream(leftover, io.BytesIO(b"partial"))
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    from pipelines.reconcile import reconcile

    class Quiet:
        def send(self, queue, job_id):
            pass

    reconcile(ctx.sessions, Quiet(), ctx.storage, ctx.settings)  # back to queued for a new attempt
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers).json["status"] == "canceled"
    assert not ctx.storage.exists(leftover)


def test_a_park_after_losing_the_lease_does_not_clear_the_new_attempts_token(
    client, tenant, clip_small, runtime
):
    ctx = runtime.context
    file_id = upload(client, tenant, clip_small).json["id"]
    job_id = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    ).json["id"]
    first = runner.claim(ctx, job_id)
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    second = runner.claim(ctx, job_id)  # a takeover
    assert second is not None and second.attempt == 2

    class Gen:
        poll_seconds = 1.0

    ctx.generation = Gen()  # type: ignore[assignment]
    try:
        runner._park(ctx, first, Pending("IN_QUEUE", queue_position=3))
    finally:
        ctx.generation = None
    with transaction(ctx.sessions) as s:
        assert s.get(Job, job_id).lease_token == second.token


def test_a_job_a_worker_claimed_before_dispatch_noted_it_is_still_stamped_as_sent(
    client, tenant, clip_small, runtime
):
    ctx = runtime.context
    file_id = upload(client, tenant, clip_small).json["id"]
    job_id = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    ).json["id"]
    with transaction(ctx.sessions) as s:
        assert s.get(Job, job_id).enqueued_at is not None


def test_a_submit_whose_dispatch_fails_still_answers_202(app, client, tenant, clip_small):
    class Broken:
        def send(self, queue, job_id):
            raise ConnectionError("broker down")

    app.extensions["faktry"].sender = Broken()
    file_id = upload(client, tenant, clip_small).json["id"]
    r = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    )
    assert r.status_code == 202 and r.json["status"] == "queued"
    assert len(client.get("/v1/jobs", headers=tenant.headers).json["data"]) == 1
