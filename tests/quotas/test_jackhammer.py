"""A jackhammer: random grants, submits, cancels, successes, failures, killed workers and
expiry across tenants, then the ledger check and the storage usage check must be clean and
every job must have resolved its hold exactly as its outcome says."""

from __future__ import annotations

import contextlib
import dataclasses
import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from faktry import clock
from faktry.db import transaction
from faktry.errors import InvalidMedia, ProcessingFailed
from pipelines import jobtypes, runner
from pipelines.checks import storage_usage
from pipelines.models import Job
from pipelines.reconcile import reconcile
from quotas import ledger
from quotas.models import Hold
from tests.web.helpers import upload

pytestmark = pytest.mark.slow


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, queue, job_id):
        self.sent.append(job_id)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_leave_the_ledger_and_storage_exact(
    client, make_tenant, png_image, runtime, monkeypatch, seed
):
    rng = random.Random(seed)
    ctx = runtime.context
    outcome = {"next": "ok"}
    real = jobtypes.JOB_TYPES["image.resize"]

    def step(step_ctx):
        kind = outcome["next"]
        if kind == "bad":
            raise InvalidMedia("bad input")
        if kind == "flaky":
            raise ProcessingFailed("encoder crashed")
        return real.run(step_ctx)

    monkeypatch.setitem(jobtypes.JOB_TYPES, "image.resize", dataclasses.replace(real, run=step))
    tenants = [make_tenant(credits=rng.randint(0, 3)) for _ in range(3)]
    inputs = {t.id: upload(client, t, png_image).json["id"] for t in tenants}
    jobs: list[tuple[object, str]] = []
    for n in range(120):
        tenant = rng.choice(tenants)
        op = rng.choices(
            [
                "grant",
                "submit",
                "cancel",
                "run_ok",
                "run_bad",
                "run_flaky",
                "kill",
                "expire",
                "delete_output",
            ],
            weights=[2, 8, 2, 4, 1, 1, 1, 1, 1],
        )[0]
        if op == "grant":
            with transaction(ctx.sessions) as s:
                ledger.add_credits(s, tenant.id, rng.randint(50, 800), source="grant", key=f"jh-{seed}-{n}")
        elif op == "submit":
            r = client.post(
                "/v1/jobs",
                json={
                    "type": "image.resize",
                    "input": {"file_id": inputs[tenant.id]},
                    "params": {"width": 20, "height": 20},
                },
                headers=tenant.headers,
            )
            assert r.status_code in (202, 402), r.json
            if r.status_code == 202:
                jobs.append((tenant, r.json["id"]))
        elif jobs and op == "cancel":
            owner, job_id = rng.choice(jobs)
            assert client.post(f"/v1/jobs/{job_id}/cancel", headers=owner.headers).status_code in (202, 409)
        elif jobs and op.startswith("run_"):
            outcome["next"] = op.removeprefix("run_")
            _, job_id = rng.choice(jobs)
            with contextlib.suppress(runner.RetryLater):
                runner.run(ctx, job_id)
        elif jobs and op == "kill":
            _, job_id = rng.choice(jobs)
            runner.claim(ctx, job_id)  # a worker takes it and dies
            clock.advance(timedelta(seconds=ctx.settings.job_lease_seconds + 1))
            reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
        elif op == "expire" and rng.random() < 0.3:
            clock.advance(timedelta(days=rng.choice([30, 200, 400])))
            reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
        elif op == "delete_output":
            files = client.get("/v1/files", headers=tenant.headers).json["data"]
            outputs = [f for f in files if f["origin"] == "output"]
            if outputs:
                assert (
                    client.delete(
                        f"/v1/files/{rng.choice(outputs)['id']}", headers=tenant.headers
                    ).status_code
                    == 204
                )
    outcome["next"] = "ok"
    for _, job_id in jobs:  # drain what is left, as workers would
        for _ in range(ctx.settings.max_retries + 2):
            try:
                runner.run(ctx, job_id)
                break
            except runner.RetryLater:
                continue
    reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings)
    with transaction(ctx.sessions) as s:
        assert ledger.check(s) == []
        assert storage_usage(s, ctx.storage) == []
        for job in s.scalars(select(Job)):
            hold = s.scalars(select(Hold).where(Hold.job_id == job.id)).one()
            assert job.status in ("succeeded", "failed", "canceled"), job.status
            if job.status == "succeeded":
                assert hold.status == "captured" and hold.captured == job.cost_charged <= job.cost_held
            else:
                assert hold.status == "released" and job.cost_charged == 0
        for tenant in tenants:
            funds = ledger.balance(s, tenant.id)
            assert funds.available >= 0 and funds.held == 0
    assert len(jobs) > 10
