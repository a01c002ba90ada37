"""``job.progress``: the heartbeat that saves a job's progress sends it, at most once a second
per job, and ``job.started`` comes from the claim."""

from __future__ import annotations

import json

from pipelines import runner
from tests.web.helpers import upload
from tests.webhooks.conftest import drain


def test_progress_is_sent_when_it_moves_and_at_most_once_a_second(
    client, tenant, receiver, sessions, policy, runtime, clip_small
):
    client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["job.started", "job.progress"]},
        headers=tenant.headers,
    )
    video = upload(client, tenant, clip_small).json["id"]
    job = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": video}}, headers=tenant.headers
    ).json
    claim = runner.claim(runtime.context, job["id"])
    assert claim is not None
    beat = runner.Heartbeat(runtime.context, claim)
    beat.report(0.25)
    beat.beat()  # moved: sent
    beat.report(0.5)
    beat.beat()  # moved again within the second: saved, not sent
    beat.beat()  # not moved: nothing
    assert drain(sessions, policy) == ["delivered", "delivered"]
    sent = [json.loads(r.body) for r in receiver.got]
    assert [(s["type"], s["data"].get("progress")) for s in sorted(sent, key=lambda s: s["seq"])] == [
        ("job.started", None),
        ("job.progress", 0.25),
    ]
    beat.progress_event_at -= 1.0  # a second later
    beat.report(0.75)
    beat.beat()
    assert drain(sessions, policy) == ["delivered"]
    assert json.loads(receiver.got[-1].body)["data"]["progress"] == 0.75
