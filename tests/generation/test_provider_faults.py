"""Provider faults: rate limits with Retry-After, 5xx, hangs, sustained outages (the breaker
opens, then recovers), refusals, a worker dying while a fal request waits, cancel reaching
the provider, and the per-provider concurrency budget. The ledger stays exact throughout."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from dramatiq import Worker
from sqlalchemy import select, update

from faktry import clock
from faktry.db import transaction
from pipelines import runner
from pipelines.models import Job
from pipelines.reconcile import reconcile
from quotas import ledger
from quotas.models import LedgerEntry
from tests.generation.helpers import generate
from tests.web.helpers import wait_for_job


@pytest.fixture
def settings(settings):
    # Short provider timeouts, so a hang costs a fraction of a second.
    return settings.replace(provider_timeout=0.5, provider_budgets='{"fal": 2}', breaker_cooldown_seconds=2.0)


@pytest.fixture
def studio(make_tenant):
    return make_tenant("studio", credits=1000)


def ledger_state(runtime, tenant):
    with transaction(runtime.context.sessions) as s:
        assert ledger.check(s) == []
        funds = ledger.balance(s, tenant.id)
        captures = s.scalars(
            select(LedgerEntry).where(LedgerEntry.tenant_id == tenant.id, LedgerEntry.kind == "capture")
        ).all()
        return funds, captures


def image(client, tenant, **params):
    r = generate(client, tenant, "image.generate", "gpt-image-1", {"prompt": "a quiet harbour"}, **params)
    assert r.status_code == 202, r.json
    return r.json["id"]


def test_a_rate_limit_beyond_the_sdks_retries_is_honoured_and_the_job_succeeds_once(
    client, studio, worker, openai_fake, runtime
):
    openai_fake.fail(429, times=4, retry_after_ms=50)  # the SDK tries 3 times, the job once more
    done = wait_for_job(client, studio, image(client, studio), timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    funds, captures = ledger_state(runtime, studio)
    assert len(captures) == 1 and funds.available == 1_000_000 - 1500 and funds.held == 0


def test_server_errors_are_retried_with_backoff(client, studio, worker, openai_fake, runtime):
    openai_fake.fail(500, times=3)
    done = wait_for_job(client, studio, image(client, studio), timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    events = client.get(f"/v1/jobs/{done['id']}/events", headers=studio.headers).json["data"]
    assert [e["data"].get("code") for e in events if e["kind"] == "retrying"] == ["provider_error"]


def test_a_hung_call_hits_its_own_timeout_and_is_retried(client, studio, worker, openai_fake):
    openai_fake.hang(2.0, times=3)
    done = wait_for_job(client, studio, image(client, studio), timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    events = client.get(f"/v1/jobs/{done['id']}/events", headers=studio.headers).json["data"]
    assert [e["data"].get("code") for e in events if e["kind"] == "retrying"] == ["provider_timeout"]


def test_a_sustained_outage_opens_the_breaker_then_jobs_recover(client, studio, runtime, fal_fake):
    breaker = runtime.context.generation.breaker
    fal_fake.outage(True)
    ids = [
        generate(client, studio, "video.generate", "ltx-2.3", {"prompt": f"scene {i}"}, duration=6).json["id"]
        for i in range(3)
    ]
    runtime.broker.emit_after("process_boot")
    w = Worker(runtime.broker, worker_threads=3, worker_timeout=20)
    w.start()
    try:
        deadline = time.monotonic() + 20
        while not breaker.state("fal").open:
            assert time.monotonic() < deadline, "the breaker never opened"
            time.sleep(0.02)
        time.sleep(0.1)  # calls already past the gate when it opened finish
        submits_while_open = len(fal_fake.calls)
        time.sleep(0.5)  # jobs wait while it is open, instead of burning their attempts
        assert breaker.state("fal").open
        assert len(fal_fake.calls) == submits_while_open
        fal_fake.outage(False)
        done = [wait_for_job(client, studio, i, timeout=30) for i in ids]
    finally:
        w.stop()
    assert [d["status"] for d in done] == ["succeeded"] * 3
    assert all(d["attempts"] <= 4 for d in done)
    funds, captures = ledger_state(runtime, studio)
    assert len(captures) == 3 and funds.held == 0


def test_a_provider_refusal_fails_at_once_and_charges_nothing(client, studio, worker, fal_fake, runtime):
    fal_fake.fail_request("content_policy_violation")
    r = generate(client, studio, "video.generate", "ltx-2.3", {"prompt": "a storm"}, duration=6)
    done = wait_for_job(client, studio, r.json["id"], timeout=30)
    assert done["status"] == "failed" and done["error"]["code"] == "content_blocked" and done["attempts"] == 1
    funds, captures = ledger_state(runtime, studio)
    assert captures == [] and funds.available == 1_000_000


def test_an_upstream_error_resubmits_on_the_next_attempt(client, studio, worker, bfl_fake):
    bfl_fake.finish_with("Error")
    r = generate(client, studio, "image.generate", "flux-2-pro", {"prompt": "a tree"}, width=256, height=256)
    done = wait_for_job(client, studio, r.json["id"], timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert len(bfl_fake.submits) == 2


def test_a_worker_dying_while_a_fal_request_waits_reattaches_instead_of_resubmitting(
    client, studio, runtime, fal_fake
):
    ctx = runtime.context
    fal_fake.queue_polls = 1000
    job_id = generate(client, studio, "video.generate", "wan-2.7", {"prompt": "fog"}, duration=2).json["id"]
    with pytest.raises(runner.PollLater):
        runner.run(ctx, job_id)  # submitted, request id saved, parked
    assert len(fal_fake.submits) == 1
    assert runner.claim(ctx, job_id) is not None  # a worker takes the next poll and dies
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    reconcile(ctx.sessions, runtime_sender(runtime), ctx.storage, ctx.settings)
    fal_fake.complete()
    for _ in range(5):
        try:
            runner.run(ctx, job_id)
            break
        except runner.PollLater:
            continue
    with transaction(ctx.sessions) as s:
        job = s.scalars(select(Job).where(Job.id == job_id)).one()
    assert job.status == "succeeded"
    assert len(fal_fake.submits) == 1
    funds, captures = ledger_state(runtime, studio)
    assert len(captures) == 1 and funds.held == 0


def runtime_sender(runtime):
    class Recorder:
        sent = []

        def send(self, queue, job_id):
            self.sent.append(job_id)

    return Recorder()


def test_waiting_upstream_shows_the_queue_position_and_cancel_reaches_fal(
    client, studio, worker, fal_fake, runtime
):
    fal_fake.queue_polls = 1000
    job_id = generate(client, studio, "video.generate", "ltx-2.3", {"prompt": "rain"}, duration=6).json["id"]
    deadline = time.monotonic() + 20
    while True:
        body = client.get(f"/v1/jobs/{job_id}", headers=studio.headers).json
        if body["upstream"] and body["upstream"]["status"] == "IN_QUEUE":
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.02)
    assert isinstance(body["upstream"]["queue_position"], int) and body["status"] == "running"
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=studio.headers).status_code == 202
    done = wait_for_job(client, studio, job_id, timeout=20)
    assert done["status"] == "canceled"
    [request_id] = [j for j in fal_fake.jobs]
    assert fal_fake.cancels == [request_id]
    funds, captures = ledger_state(runtime, studio)
    assert captures == [] and funds.available == 1_000_000 and funds.held == 0


def test_the_provider_budget_is_never_exceeded(client, make_tenant, runtime, fal_fake):
    fal_fake.queue_polls = 4
    tenants = [make_tenant("studio", credits=1000) for _ in range(2)]
    ids = [
        (t, generate(client, t, "video.generate", "ltx-2.3", {"prompt": f"shot {i}"}, duration=6).json["id"])
        for i in range(4)
        for t in tenants
    ]
    peak = 0
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            active = sum(1 for j in list(fal_fake.jobs.values()) if j.state in ("IN_QUEUE", "IN_PROGRESS"))
            peak = max(peak, active)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    runtime.broker.emit_after("process_boot")
    w = Worker(runtime.broker, worker_threads=8, worker_timeout=20)
    w.start()
    try:
        done = [wait_for_job(client, t, i, timeout=60) for t, i in ids]
    finally:
        w.stop()
        stop.set()
        watcher.join()
    assert [d["status"] for d in done] == ["succeeded"] * 8
    assert 1 <= peak <= 2
    assert len(fal_fake.submits) == 8


def test_canceling_a_job_waiting_to_retry_still_cancels_its_provider_request(
    client, studio, runtime, fal_fake
):
    ctx = runtime.context
    fal_fake.queue_polls = 1000
    job_id = generate(client, studio, "video.generate", "ltx-2.3", {"prompt": "hail"}, duration=6).json["id"]
    with pytest.raises(runner.PollLater):
        runner.run(ctx, job_id)  # submitted upstream and parked
    with transaction(ctx.sessions) as s:  # as after a transient poll error: back to queued, request kept
        s.execute(update(Job).where(Job.id == job_id).values(status="queued", lease_token=None))
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=studio.headers)
    assert r.status_code == 202 and r.json["cancel_requested"] is True
    runner.run(ctx, job_id)  # the message the cancel sent
    with transaction(ctx.sessions) as s:
        assert s.get(Job, job_id).status == "canceled"
    assert fal_fake.cancels == [next(iter(fal_fake.jobs))]
    funds, captures = ledger_state(runtime, studio)
    assert captures == [] and funds.held == 0


def test_a_parked_job_whose_poll_message_was_lost_is_resent_and_reattaches(client, studio, runtime, fal_fake):
    ctx = runtime.context
    fal_fake.queue_polls = 1000
    job_id = generate(client, studio, "video.generate", "wan-2.7", {"prompt": "dusk"}, duration=2).json["id"]
    with pytest.raises(runner.PollLater):
        runner.run(ctx, job_id)  # parked; suppose its delayed poll message is lost
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + ctx.settings.provider_poll_seconds + 1))
    sender = runtime_sender(runtime)
    report = reconcile(ctx.sessions, sender, ctx.storage, ctx.settings)
    assert report.resent == [job_id]
    fal_fake.complete()
    runner.run(ctx, job_id)
    with transaction(ctx.sessions) as s:
        assert s.scalars(select(Job).where(Job.id == job_id)).one().status == "succeeded"
    assert len(fal_fake.submits) == 1
