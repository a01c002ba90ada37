"""The reconciler sends what a crash left unsent and takes back orphaned running jobs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from faktry import clock
from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job
from pipelines.reconcile import reconcile
from tests.web.helpers import upload


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, queue, job_id):
        self.sent.append((queue, job_id))


def _make_job(client, tenant, clip_small):
    file_id = upload(client, tenant, clip_small).json["id"]
    r = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    )
    return r.json["id"]


def _set(ctx, job_id, **values):
    with transaction(ctx.sessions) as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def _job(ctx, job_id):
    with transaction(ctx.sessions) as s:
        return s.scalars(select(Job).where(Job.id == job_id)).one()


def test_a_job_committed_but_never_sent_is_sent_once(client, tenant, clip_small, runtime):
    ctx = runtime.context
    job_id = _make_job(client, tenant, clip_small)
    _set(ctx, job_id, enqueued_at=None)  # as if the process died between commit and send
    rec = Recorder()
    assert reconcile(ctx.sessions, rec, ctx.storage, ctx.settings).resent == []  # too fresh to judge
    clock.advance(timedelta(seconds=ctx.settings.requeue_after_seconds + 1))
    assert reconcile(ctx.sessions, rec, ctx.storage, ctx.settings).resent == [job_id]
    assert reconcile(ctx.sessions, rec, ctx.storage, ctx.settings).resent == []
    assert rec.sent == [("local.small", job_id)]


def test_a_sent_queued_job_is_left_alone(client, tenant, clip_small, runtime):
    ctx = runtime.context
    _make_job(client, tenant, clip_small)
    clock.advance(timedelta(seconds=ctx.settings.requeue_after_seconds + 1))
    rec = Recorder()
    reconcile(ctx.sessions, rec, ctx.storage, ctx.settings)
    assert rec.sent == []


def test_a_running_job_whose_worker_died_is_requeued_for_a_new_attempt(client, tenant, clip_small, runtime):
    ctx = runtime.context
    job_id = _make_job(client, tenant, clip_small)
    claim = runner.claim(ctx, job_id)
    assert claim is not None
    rec = Recorder()
    reconcile(ctx.sessions, rec, ctx.storage, ctx.settings)
    assert rec.sent == []  # the lease is live
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    reconcile(ctx.sessions, rec, ctx.storage, ctx.settings)
    reconcile(ctx.sessions, rec, ctx.storage, ctx.settings)
    assert rec.sent == [("local.small", job_id)]
    assert _job(ctx, job_id).status == "queued"
    runner.run(ctx, job_id)
    job = _job(ctx, job_id)
    assert job.status == "succeeded" and job.attempts == 2


def test_an_orphaned_job_with_a_cancel_request_is_canceled(client, tenant, clip_small, runtime):
    ctx = runtime.context
    job_id = _make_job(client, tenant, clip_small)
    assert runner.claim(ctx, job_id) is not None
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers).json["cancel_requested"] is True
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    rec = Recorder()
    report = reconcile(ctx.sessions, rec, ctx.storage, ctx.settings)
    assert report.canceled == [job_id] and rec.sent == []
    assert _job(ctx, job_id).status == "canceled"


def test_two_reconcilers_at_once_resend_an_orphan_once(client, tenant, clip_small, runtime):
    import threading

    ctx = runtime.context
    job_id = _make_job(client, tenant, clip_small)
    assert runner.claim(ctx, job_id) is not None
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    rec = Recorder()
    barrier = threading.Barrier(2)

    def sweep():
        barrier.wait()
        reconcile(ctx.sessions, rec, ctx.storage, ctx.settings)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rec.sent == [("local.small", job_id)]
