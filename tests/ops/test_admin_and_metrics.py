"""Operators' views: queues with a scaling hint, dead letters and replay, and /metrics."""

from __future__ import annotations

import dataclasses

import pytest

from faktry.errors import InvalidMedia
from pipelines import jobtypes, runner
from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def staff(make_tenant):
    return make_tenant(admin=True)


def probe(client, tenant, file_id):
    r = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    )
    assert r.status_code == 202, r.json
    return r.json["id"]


def test_admin_views_are_for_staff_only(client, tenant):
    for path in ("/v1/admin/queues", "/v1/admin/dead-letters"):
        r = client.get(path, headers=tenant.headers)
        assert r.status_code == 403 and r.json["error"]["code"] == "staff_only"


def test_queues_show_depth_age_running_throughput_and_a_scaling_hint(
    client, tenant, staff, clip_small, runtime
):
    file_id = upload(client, tenant, clip_small).json["id"]
    waiting = [probe(client, tenant, file_id) for _ in range(3)]
    r = client.get("/v1/admin/queues", headers=staff.headers)
    assert r.status_code == 200
    small = next(q for q in r.json["data"] if q["queue"] == "local.small")
    assert small["depth"] == 3 and small["oldest_age_seconds"] is not None
    assert small["scaling_hint"]["workers_needed"] >= 1
    for job_id in waiting:
        runner.run(runtime.context, job_id)
    small = next(
        q
        for q in client.get("/v1/admin/queues", headers=staff.headers).json["data"]
        if q["queue"] == "local.small"
    )
    assert small["finished_last_5m"] == 3 and small["avg_duration_seconds"] is not None
    assert {q["queue"] for q in client.get("/v1/admin/queues", headers=staff.headers).json["data"]} >= {
        "local.small", "local.large", "openai.small", "fal.large", "bfl.small",
    }  # fmt: skip


def test_a_replayed_dead_letter_is_a_new_job_with_a_fresh_hold(
    client, tenant, staff, clip_small, runtime, monkeypatch, worker
):
    file_id = upload(client, tenant, clip_small).json["id"]
    real = jobtypes.JOB_TYPES["media.probe"]

    def broken(ctx):
        raise InvalidMedia("decoder refused it")

    monkeypatch.setitem(jobtypes.JOB_TYPES, "media.probe", dataclasses.replace(real, run=broken))
    failed = wait_for_job(client, tenant, probe(client, tenant, file_id))
    assert failed["status"] == "failed" and failed["cost"]["charged"] == 0
    letters = client.get("/v1/admin/dead-letters", headers=staff.headers).json["data"]
    assert [(d["id"], d["tenant_id"], d["error"]["code"]) for d in letters] == [
        (failed["id"], tenant.id, "invalid_media")
    ]
    monkeypatch.setitem(jobtypes.JOB_TYPES, "media.probe", real)
    before = client.get("/v1/account", headers=tenant.headers).json["credits"]["available"]
    r = client.post(f"/v1/admin/jobs/{failed['id']}/replay", headers=staff.headers)
    assert r.status_code == 202
    replayed = r.json
    assert replayed["id"] != failed["id"] and replayed["metadata"]["replay_of"] == failed["id"]
    done = wait_for_job(client, tenant, replayed["id"])
    assert done["status"] == "succeeded"
    after = client.get("/v1/account", headers=tenant.headers).json["credits"]["available"]
    assert before - after == done["cost"]["charged"]  # one charge, for the replay only
    assert client.get(f"/v1/jobs/{failed['id']}", headers=tenant.headers).json["status"] == "failed"
    assert client.post(f"/v1/admin/jobs/{replayed['id']}/replay", headers=staff.headers).status_code == 409


def test_metrics_count_jobs_queues_and_credits_held(client, tenant, clip_small, runtime):
    file_id = upload(client, tenant, clip_small).json["id"]
    first = probe(client, tenant, file_id)
    probe(client, tenant, file_id)
    runner.run(runtime.context, first)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'faktry_jobs_total{type="media.probe",status="created"} 2' in text
    assert 'faktry_jobs_total{type="media.probe",status="succeeded"} 1' in text
    assert 'faktry_queue_depth{queue="local.small"} 2' in text  # both messages (one was run by hand)
    assert 'faktry_job_duration_seconds_count{type="media.probe"} 1' in text
    assert "faktry_credits_held_millicredits 100" in text
    assert 'faktry_breaker_open{provider="fal"} 0' in text


def test_metrics_can_require_a_token(app, client):
    app.extensions["faktry"].settings = app.extensions["faktry"].settings.replace(metrics_token="s3cret")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
