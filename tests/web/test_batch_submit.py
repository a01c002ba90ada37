"""POST /v1/jobs/batch: up to 1,000 jobs in one request and one transaction, each with its
own hold and id; all of them or none, under concurrency too."""

from __future__ import annotations

import threading

from sqlalchemy import event, func, select

from faktry.db import transaction
from pipelines.models import Job
from quotas import ledger
from quotas.models import MILLI, Hold
from tests.web.helpers import upload, wait_for_job


def _resize(file_id, width=8):
    return {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": width, "height": 8}}


def _counts(runtime, tenant_id):
    with transaction(runtime.context.sessions) as s:
        jobs = s.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id))
        holds = s.scalar(select(func.count()).select_from(Hold).where(Hold.tenant_id == tenant_id))
        return jobs, holds, ledger.balance(s, tenant_id)


def test_a_batch_makes_every_job_with_its_own_hold_in_one_transaction(
    client, app, make_tenant, png_image, runtime
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    engine = app.extensions["faktry"].sessions.kw["bind"]
    begins = []

    def began(conn):
        begins.append(conn)

    event.listen(engine, "begin", began)
    try:
        r = client.post("/v1/jobs/batch", json={"jobs": [_resize(file_id)] * 50}, headers=tenant.headers)
    finally:
        event.remove(engine, "begin", began)
    assert r.status_code == 202, r.json
    data = r.json["data"]
    assert len(data) == 50 and len({job["id"] for job in data}) == 50
    assert all(job["status"] == "queued" and job["cost"]["held"] == job["cost"]["estimated"] for job in data)
    assert len(begins) == 1  # auth, validation, 50 jobs, 50 holds and their events: one transaction
    jobs, holds, funds = _counts(runtime, tenant.id)
    assert (jobs, holds) == (50, 50)
    assert funds.held == sum(job["cost"]["held"] for job in data)


def test_a_refused_item_refuses_the_batch_naming_each_item_and_holds_nothing(
    client, make_tenant, png_image, runtime
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    items = [_resize(file_id) for _ in range(10)]
    items[3]["params"]["width"] = 0
    items[7]["input"]["file_id"] = "fil_" + "0" * 24
    r = client.post("/v1/jobs/batch", json={"jobs": items}, headers=tenant.headers)
    assert r.status_code == 422
    error = r.json["error"]
    assert error["code"] == "batch_refused"
    refused = {item["index"]: item for item in error["items"]}
    assert set(refused) == {3, 7}
    assert refused[3]["field"].startswith("jobs[3].params")
    assert refused[7] == {
        "index": 7,
        "code": "file_not_found",
        "field": "jobs[7].input.file_id",
        "message": refused[7]["message"],
    }
    jobs, holds, funds = _counts(runtime, tenant.id)
    assert (jobs, holds, funds.held) == (0, 0, 0)


def test_credits_short_for_the_whole_batch_refuse_it_with_402(client, make_tenant, png_image, runtime):
    tenant = make_tenant("studio", credits=1)
    file_id = upload(client, tenant, png_image).json["id"]
    price = client.post("/v1/jobs/quote", json=_resize(file_id), headers=tenant.headers).json["price"]
    n = MILLI // price + 1  # one more than the credits pay for
    r = client.post("/v1/jobs/batch", json={"jobs": [_resize(file_id)] * n}, headers=tenant.headers)
    assert r.status_code == 402 and r.json["error"]["code"] == "insufficient_credits"
    jobs, holds, funds = _counts(runtime, tenant.id)
    assert (jobs, holds, funds.held, funds.available) == (0, 0, 0, MILLI)


def test_the_same_key_returns_the_same_jobs_and_another_body_is_refused(
    client, make_tenant, png_image, runtime
):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    headers = {**tenant.headers, "Idempotency-Key": "nightly-2026-12-06"}
    body = {"jobs": [_resize(file_id, w) for w in (8, 9, 10)]}
    first = client.post("/v1/jobs/batch", json=body, headers=headers)
    again = client.post("/v1/jobs/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert [j["id"] for j in first.json["data"]] == [j["id"] for j in again.json["data"]]
    other = client.post("/v1/jobs/batch", json={"jobs": [_resize(file_id, 11)]}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"
    assert _counts(runtime, tenant.id)[:2] == (3, 3)


def test_too_many_or_no_jobs_are_refused(client, make_tenant, png_image):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    for jobs in ([], [_resize(file_id)] * 1001, "not a list"):
        r = client.post("/v1/jobs/batch", json={"jobs": jobs}, headers=tenant.headers)
        assert r.status_code == 422 and r.json["error"]["field"] == "jobs"


def test_concurrent_batches_are_all_or_nothing_and_one_key_makes_one_set(
    app, client, make_tenant, png_image, runtime
):
    tenant = make_tenant("studio", credits=1)
    file_id = upload(client, tenant, png_image).json["id"]
    price = client.post("/v1/jobs/quote", json=_resize(file_id), headers=tenant.headers).json["price"]
    half = MILLI // price // 2 + 1  # two such batches do not both fit
    barrier = threading.Barrier(4)
    answers: list[tuple[str, int, list[str]]] = []

    def send(name, body, key):
        c = app.test_client()
        barrier.wait()
        headers = {**tenant.headers, **({"Idempotency-Key": key} if key else {})}
        r = c.post("/v1/jobs/batch", json=body, headers=headers)
        answers.append((name, r.status_code, [j["id"] for j in (r.json.get("data") or [])]))

    threads = [
        threading.Thread(target=send, args=("a", {"jobs": [_resize(file_id, 8)] * half}, None)),
        threading.Thread(target=send, args=("b", {"jobs": [_resize(file_id, 9)] * half}, None)),
        threading.Thread(target=send, args=("c1", {"jobs": [_resize(file_id, 10)]}, "same")),
        threading.Thread(target=send, args=("c2", {"jobs": [_resize(file_id, 10)]}, "same")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_name = {name: (status, ids) for name, status, ids in answers}
    assert sorted([by_name["a"][0], by_name["b"][0]]) == [202, 402]
    assert by_name["c1"][0] == by_name["c2"][0] == 202 and by_name["c1"][1] == by_name["c2"][1]
    jobs, holds, funds = _counts(runtime, tenant.id)
    assert jobs == holds == half + 1
    assert funds.held == (half + 1) * price


def test_batched_jobs_run_like_any_other(client, make_tenant, png_image, runtime, worker):
    tenant = make_tenant("studio", credits=100)
    file_id = upload(client, tenant, png_image).json["id"]
    r = client.post("/v1/jobs/batch", json={"jobs": [_resize(file_id)] * 5}, headers=tenant.headers)
    done = [wait_for_job(client, tenant, job["id"]) for job in r.json["data"]]
    assert [d["status"] for d in done] == ["succeeded"] * 5
    assert all(d["cost"]["charged"] == d["cost"]["estimated"] for d in done)
