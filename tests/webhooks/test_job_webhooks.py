"""Per-job webhooks on ``POST /v1/jobs``, the batch submit and workflow runs: the job's
events go there, signed with the tenant's job-webhook secret."""

from __future__ import annotations

import json

from pipelines.webhooks import signing
from tests.web.helpers import upload
from tests.webhooks.conftest import drain


def test_a_jobs_own_webhook_gets_its_created_event_signed_with_the_job_webhook_secret(
    client, tenant, receiver, sessions, policy, clip_small
):
    video = upload(client, tenant, clip_small).json["id"]
    r = client.post(
        "/v1/jobs",
        json={"type": "media.probe", "input": {"file_id": video}, "webhook": {"url": receiver.url}},
        headers=tenant.headers,
    )
    assert r.status_code == 202
    assert drain(sessions, policy) == ["delivered"]
    sent = receiver.got[0]
    payload = json.loads(sent.body)
    assert payload["type"] == "job.created" and payload["data"]["job_id"] == r.json["id"]
    secret = client.get("/v1/webhook-signing-key", headers=tenant.headers).json["secret"]
    assert signing.verify(secret, sent.headers, sent.body, now=int(sent.headers["webhook-timestamp"]))
    # A per-job webhook is not one of the tenant's endpoints.
    assert client.get("/v1/webhook-endpoints", headers=tenant.headers).json["data"] == []


def test_a_batch_gives_each_job_its_own_or_the_shared_webhook(
    client, tenant, receiver, sessions, policy, clip_small
):
    video = upload(client, tenant, clip_small).json["id"]
    job = {"type": "media.probe", "input": {"file_id": video}}
    r = client.post(
        "/v1/jobs/batch",
        json={
            "webhook": {"url": receiver.url + "?shared", "events": ["job.created"]},
            "jobs": [job, {**job, "webhook": {"url": receiver.url + "?own"}}],
        },
        headers=tenant.headers,
    )
    assert r.status_code == 202, r.json
    assert drain(sessions, policy) == ["delivered", "delivered"]
    ids = {json.loads(g.body)["data"]["job_id"] for g in receiver.got}
    assert ids == {j["id"] for j in r.json["data"]}


def test_a_bad_webhook_is_a_422_naming_it(client, tenant, clip_small):
    video = upload(client, tenant, clip_small).json["id"]
    for hook, field in [
        ("https://x.example", "webhook"),
        ({"url": "http://10.0.0.1/"}, "webhook.url"),
        ({"url": "https://x.example", "events": ["nope"]}, "webhook.events"),
    ]:
        r = client.post(
            "/v1/jobs",
            json={"type": "media.probe", "input": {"file_id": video}, "webhook": hook},
            headers=tenant.headers,
        )
        assert r.status_code == 422 and r.json["error"]["field"] == field, r.json


def test_a_workflow_runs_own_webhook_gets_the_runs_events(
    client, tenant, receiver, sessions, policy, png_image
):
    image = upload(client, tenant, png_image).json["id"]
    graph = {"nodes": {"probe": {"type": "media.probe", "input": {"file_id": image}}}}
    r = client.post(
        "/v1/workflow-runs",
        json={"graph": graph, "webhook": {"url": receiver.url, "events": ["workflow_run.started"]}},
        headers=tenant.headers,
    )
    assert r.status_code == 202, r.json
    assert drain(sessions, policy) == ["delivered"]
    payload = json.loads(receiver.got[0].body)
    assert payload["type"] == "workflow_run.started" and payload["data"]["run_id"] == r.json["id"]
    assert payload["seq"] > 0


def test_a_project_render_takes_a_webhook_for_its_run(client, tenant, receiver, sessions, policy, png_image):
    image = upload(client, tenant, png_image).json["id"]
    project = client.post(
        "/v1/projects",
        json={"name": "Hooked", "scenes": [{"script": "", "media": {"file_id": image}, "duration": 2}]},
        headers=tenant.headers,
    ).json
    bad = client.post(
        f"/v1/projects/{project['id']}/render",
        json={"webhook": {"url": "http://10.0.0.1/"}},
        headers=tenant.headers,
    )
    assert bad.status_code == 422 and bad.json["error"]["field"] == "webhook.url"
    r = client.post(
        f"/v1/projects/{project['id']}/render",
        json={"webhook": {"url": receiver.url, "events": ["workflow_run.started"]}},
        headers=tenant.headers,
    )
    assert r.status_code == 202, r.json
    assert drain(sessions, policy) == ["delivered"]
    payload = json.loads(receiver.got[0].body)
    assert payload["type"] == "workflow_run.started" and payload["data"]["run_id"] == r.json["id"]


def test_the_log_per_event_shows_every_endpoints_message_and_sends_one_again(
    client, tenant, receiver, sessions, policy, clip_small
):
    client.post("/v1/webhook-endpoints", json={"url": receiver.url + "?all"}, headers=tenant.headers)
    video = upload(client, tenant, clip_small).json["id"]
    job = client.post(
        "/v1/jobs",
        json={"type": "media.probe", "input": {"file_id": video}, "webhook": {"url": receiver.url + "?own"}},
        headers=tenant.headers,
    ).json
    assert drain(sessions, policy) == ["delivered", "delivered"]
    seq = json.loads(receiver.got[0].body)["seq"]
    log = client.get(
        "/v1/webhook-messages", query_string={"subject_id": job["id"], "seq": seq}, headers=tenant.headers
    ).json["data"]
    assert len(log) == 2 and {m["type"] for m in log} == {"job.created"}
    assert all(m["status"] == "delivered" and len(m["log"]) == 1 for m in log)
    own = next(m for m in log if m["endpoint_id"] not in {h["id"] for h in _endpoints(client, tenant)})
    again = client.post(f"/v1/webhook-messages/{own['id']}/redeliver", headers=tenant.headers)
    assert again.status_code == 202 and again.json == {"redelivering": 1}
    assert drain(sessions, policy) == ["delivered"]
    assert receiver.got[-1].headers["webhook-id"] == own["id"]
    assert len(client.get(f"/v1/webhook-messages/{own['id']}", headers=tenant.headers).json["log"]) == 2
    bad = client.get("/v1/webhook-messages", query_string={"seq": "x"}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.json["error"]["field"] == "seq"


def _endpoints(client, tenant):
    return client.get("/v1/webhook-endpoints", headers=tenant.headers).json["data"]
