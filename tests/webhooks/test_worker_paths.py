"""The two ways a message reaches a real Dramatiq worker: sent at commit (a request's
transaction), and handed out by the scheduler's sweep when nothing was sent."""

from __future__ import annotations

import time

from faktry.cli import sweep_webhooks
from faktry.db import transaction
from pipelines.webhooks import outbox
from workers.broker import BrokerSender


def wait_for(receiver, count: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while len(receiver.got) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_message_is_sent_at_commit_and_a_message_nobody_sent_is_swept_to_the_worker(
    client, tenant, receiver, sessions, settings, runtime, worker
):
    hook = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    wait_for(receiver, 1)
    assert len(receiver.got) == 1  # the request's commit sent it; no sweep ran

    with transaction(sessions) as session:  # these sessions send nothing at commit
        [lost] = outbox.record(session, tenant.id, outbox.TEST, {"lost": True})
    assert sweep_webhooks(settings, sessions, BrokerSender(runtime.broker)) == 1
    wait_for(receiver, 2)
    assert [r.headers["webhook-id"] for r in receiver.got][1:] == [lost]
    assert sweep_webhooks(settings, sessions, BrokerSender(runtime.broker)) == 0
