"""Each job outcome leaves exactly the ledger it should, through the API and a real runner."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from faktry import clock
from faktry.db import transaction
from faktry.errors import ProcessingFailed
from pipelines import jobtypes, runner
from pipelines.models import Job
from pipelines.reconcile import reconcile
from quotas import ledger
from quotas.models import MILLI, Hold, LedgerEntry
from storage.models import File
from tests.web.helpers import upload

CREDITS = 10 * MILLI


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, queue, job_id):
        self.sent.append(job_id)


@pytest.fixture
def ctx(runtime):
    return runtime.context


@pytest.fixture
def payer(make_tenant):
    return make_tenant(credits=CREDITS // MILLI)


def submit(client, tenant, file_id, type_="video.transcode", params=None):
    body = {
        "type": type_,
        "input": {"file_id": file_id},
        "params": {"preset": "mp4_360p"} if params is None else params,
    }
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    return r.json


def money(ctx, tenant_id):
    with transaction(ctx.sessions) as s:
        funds = ledger.balance(s, tenant_id)
        assert ledger.check(s) == []
        entries = sorted(
            (e.kind, e.available, e.held)
            for e in s.scalars(select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id))
        )
        return funds, entries


def job_row(ctx, job_id) -> Job:
    with transaction(ctx.sessions) as s:
        return s.scalars(select(Job).where(Job.id == job_id)).one()


def test_a_quote_prices_a_job_without_submitting_it(client, payer, clip_small):
    file_id = upload(client, payer, clip_small).json["id"]
    body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_1080p"}}
    r = client.post("/v1/jobs/quote", json=body, headers=payer.headers)
    assert r.status_code == 200
    assert r.json["price"] == 200  # 1 s of 1080p at 1500/min is below the 200 minimum
    assert r.json["sufficient"] is True and r.json["available"] == CREDITS
    assert client.get("/v1/jobs", headers=payer.headers).json["data"] == []
    bad = client.post("/v1/jobs/quote", json={**body, "params": {"preset": "x"}}, headers=payer.headers)
    assert bad.status_code == 422


def test_success_charges_the_actual_cost_and_releases_the_rest(client, payer, long_clip, ctx):
    file_id = upload(client, payer, long_clip).json["id"]
    job = submit(client, payer, file_id, params={"preset": "mp4_360p"})
    # 8 s at 500/min is 67 millicredits, below the transcode minimum of 200.
    assert job["cost"] == {"estimated": 200, "held": 200, "charged": None}
    held = job["cost"]["held"]
    runner.run(ctx, job["id"])
    done = client.get(f"/v1/jobs/{job['id']}", headers=payer.headers).json
    assert done["status"] == "succeeded"
    charged = done["cost"]["charged"]
    assert 0 < charged <= held
    funds, entries = money(ctx, payer.id)
    assert funds.available == CREDITS - charged and funds.held == 0
    assert ("capture", 0, -charged) in entries


def test_bad_input_fails_and_charges_nothing(client, payer, clip_small, ctx, settings):
    file_id = upload(client, payer, clip_small).json["id"]
    with transaction(ctx.sessions) as s:
        key = s.get(File, file_id).storage_key
    stored = Path(settings.resolved_storage_url.removeprefix("file:")) / key
    stored.write_bytes(stored.read_bytes()[:300])
    job = submit(client, payer, file_id)
    runner.run(ctx, job["id"])
    done = client.get(f"/v1/jobs/{job['id']}", headers=payer.headers).json
    assert done["status"] == "failed" and done["error"]["code"] == "invalid_media"
    assert done["cost"]["charged"] == 0
    funds, entries = money(ctx, payer.id)
    assert funds.available == CREDITS and funds.held == 0
    assert [k for k, _, _ in entries].count("release") == 1


def test_a_platform_error_keeps_the_hold_through_retries_then_releases_it(
    client, payer, clip_small, ctx, monkeypatch
):
    def broken(step_ctx):
        raise ProcessingFailed("encoder crashed")

    monkeypatch.setitem(
        jobtypes.JOB_TYPES, "media.probe", dataclasses.replace(jobtypes.JOB_TYPES["media.probe"], run=broken)
    )
    file_id = upload(client, payer, clip_small).json["id"]
    job = submit(client, payer, file_id, "media.probe", {})
    for _ in range(ctx.settings.max_retries):
        with pytest.raises(runner.RetryLater):
            runner.run(ctx, job["id"])
        assert money(ctx, payer.id)[0].held == job["cost"]["held"]
    runner.run(ctx, job["id"])
    assert job_row(ctx, job["id"]).status == "failed"
    funds, _ = money(ctx, payer.id)
    assert funds.available == CREDITS and funds.held == 0


def test_canceling_a_queued_job_releases_its_hold(client, payer, clip_small, ctx):
    file_id = upload(client, payer, clip_small).json["id"]
    job = submit(client, payer, file_id)
    assert money(ctx, payer.id)[0].held == job["cost"]["held"]
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=payer.headers)
    funds, _ = money(ctx, payer.id)
    assert funds.available == CREDITS and funds.held == 0
    runner.run(ctx, job["id"])  # a late delivery changes nothing
    assert money(ctx, payer.id)[0].available == CREDITS


def test_a_killed_worker_is_charged_once_after_the_new_attempt(client, payer, clip_small, ctx):
    file_id = upload(client, payer, clip_small).json["id"]
    job = submit(client, payer, file_id)
    assert runner.claim(ctx, job["id"]) is not None  # the worker that then dies
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
    runner.run(ctx, job["id"])
    done = job_row(ctx, job["id"])
    assert done.status == "succeeded" and done.attempts == 2
    funds, entries = money(ctx, payer.id)
    assert [k for k, _, _ in entries].count("capture") == 1
    assert funds.available == CREDITS - done.cost_charged and funds.held == 0


def test_an_orphaned_job_canceled_by_the_reconciler_releases_its_hold(client, payer, clip_small, ctx):
    file_id = upload(client, payer, clip_small).json["id"]
    job = submit(client, payer, file_id)
    runner.claim(ctx, job["id"])
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=payer.headers)
    clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
    reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
    funds, _ = money(ctx, payer.id)
    assert funds.available == CREDITS and funds.held == 0


def test_a_hold_left_by_a_vanished_job_is_released_by_the_sweep_once(client, payer, clip_small, ctx):
    with transaction(ctx.sessions) as s:
        ledger.hold(s, payer.id, "job_vanished000000000000", 300)
    report = reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
    assert report.holds_resolved == ["job_vanished000000000000"]
    assert reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings).holds_resolved == []
    with transaction(ctx.sessions) as s:
        assert s.scalars(select(Hold)).one().status == "released"
    funds, _ = money(ctx, payer.id)
    assert funds.available == CREDITS


def test_credits_expiring_while_a_job_waits_stay_held_for_it(client, payer, clip_small, ctx):
    file_id = upload(client, payer, clip_small).json["id"]
    job = submit(client, payer, file_id)
    clock.advance(timedelta(days=366))
    report = reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
    assert report.lots_expired == 1
    funds, _ = money(ctx, payer.id)
    assert funds.available == 0 and funds.held == job["cost"]["held"]
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=payer.headers)
    funds, entries = money(ctx, payer.id)
    assert funds.available == 0 and funds.held == 0  # released after expiry: expired at once
    assert [k for k, _, _ in entries].count("expiry") == 2
