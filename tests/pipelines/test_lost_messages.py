"""A queued job whose message is lost is sent again within a window, whatever lost it; a
job that merely waits (behind a fair-share backlog, in the delay queue) is never sent twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dramatiq import Message
from sqlalchemy import select

from faktry import clock
from faktry.db import transaction
from pipelines.admission import AdmittingSender
from pipelines.models import Job
from pipelines.reconcile import reconcile
from tests import services as svc
from tests.web.helpers import upload, wait_for_job


class Recording:
    """Wraps the real sender and notes what the reconciler sends again."""

    def __init__(self, sender):
        self.inner = sender
        self.sent: list[str] = []

    def send(self, queue, job_id):
        self.sent.append(job_id)
        self.inner.send(queue, job_id)

    def present(self, jobs):
        return self.inner.present(jobs)


@pytest.fixture
def sender(client, runtime, settings):
    """The production sender (fair admission and hand-over keys) behind the test app."""
    from workers.broker import make_sender

    real = make_sender(
        settings.replace(admission_depth=2), runtime.broker, svc.REDIS_URL, runtime.context.sessions
    )
    assert isinstance(real, AdmittingSender)
    client.application.extensions["faktry"].sender = real
    return Recording(real)


def _submit(client, tenant, file_id, n=1):
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    return [client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"] for _ in range(n)]


def _sweep(runtime, sender):
    ctx = runtime.context
    return reconcile(ctx.sessions, sender, ctx.storage, ctx.settings)


def _past_window(settings):
    clock.advance(timedelta(seconds=settings.requeue_after_seconds + 1))


def _run_all(runtime, sender, client, pairs):
    from dramatiq import Worker

    from workers.actors import jobs as actors

    runtime.broker.actors.pop("run_job", None)
    actors.declare(runtime.broker, runtime.context, sender.inner)
    runtime.broker.emit_after("process_boot")
    worker = Worker(runtime.broker, worker_threads=2, worker_timeout=20)
    worker.start()
    try:
        return [wait_for_job(client, tenant, job_id, timeout=60) for tenant, job_id in pairs]
    finally:
        worker.stop()


def test_jobs_lost_with_an_emptied_redis_are_sent_again_once_and_run_once(
    client, make_tenant, png_image, runtime, settings, sender
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    ids = _submit(client, tenant, file_id, n=5)  # two admitted to the broker, three waiting in admission
    svc.clear_namespace(settings.redis_namespace)  # Redis restarted empty: broker and admission gone
    assert _sweep(runtime, sender).resent == []  # inside the window nothing is judged
    _past_window(settings)
    assert sorted(_sweep(runtime, sender).resent) == sorted(ids)
    assert _sweep(runtime, sender).resent == []  # sent once, and now held again
    _past_window(settings)
    assert _sweep(runtime, sender).resent == []
    done = _run_all(runtime, sender, client, [(tenant, j) for j in ids])
    assert [d["status"] for d in done] == ["succeeded"] * 5
    assert all(d["attempts"] == 1 and len(d["outputs"]) == 1 for d in done)
    assert sum(d["cost"]["charged"] for d in done) == sum(d["cost"]["estimated"] for d in done)


def test_jobs_waiting_behind_a_backlog_are_never_sent_twice(
    client, make_tenant, png_image, runtime, settings, sender
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    ids = _submit(client, tenant, file_id, n=6)
    for _ in range(3):  # well past the window, several times
        _past_window(settings)
        assert _sweep(runtime, sender).resent == []
    with transaction(runtime.context.sessions) as s:
        stamps = s.scalars(select(Job.enqueued_at).where(Job.id.in_(ids))).all()
    assert all(stamp is not None and stamp >= clock.now() - timedelta(seconds=1) for stamp in stamps)


def test_a_message_the_broker_dropped_is_sent_again(
    client, make_tenant, png_image, runtime, settings, sender
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    [job_id] = _submit(client, tenant, file_id)
    # Drop every message of the queue, as a nack to the dead letters or an age limit would.
    broker = runtime.broker
    broker.client.delete(f"{broker.namespace}:local.small", f"{broker.namespace}:local.small.msgs")
    _past_window(settings)
    assert _sweep(runtime, sender).resent == [job_id]


def test_a_delayed_message_counts_as_held(client, make_tenant, png_image, runtime, settings, sender):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    _submit(client, tenant, file_id)
    broker = runtime.broker
    # Move the job's message to the delay queue, as a retry with backoff does (same message id).
    [raw_id] = broker.client.lrange(f"{broker.namespace}:local.small", 0, -1)
    raw = broker.client.hget(f"{broker.namespace}:local.small.msgs", raw_id)
    message = Message.decode(raw)
    broker.client.delete(f"{broker.namespace}:local.small", f"{broker.namespace}:local.small.msgs")
    broker.enqueue(message, delay=3_600_000)
    _past_window(settings)
    assert _sweep(runtime, sender).resent == []
