"""RabbitMQ as the message broker (``FAKTRY_BROKER_URL=amqp://…``): the same jobs run, waits
and delays included; Redis still holds rate limits, budgets and counters."""

from __future__ import annotations

from pathlib import Path

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from faktry.config import Settings
from tests import services as svc
from tests.conftest import make_settings
from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, redis_namespace: str) -> Settings:
    with svc.rabbitmq_vhost() as amqp:
        yield make_settings(tmp_path, sqlite_url, redis_namespace, broker_url=amqp)


def test_jobs_run_through_rabbitmq(client, make_tenant, clip_small, worker, runtime):
    assert isinstance(runtime.broker, RabbitmqBroker)
    tenant = make_tenant(credits=10)  # free tier: one job at a time, so the second waits (a delayed message)
    file_id = upload(client, tenant, clip_small).json["id"]
    body = {"type": "video.transcode", "input": {"file_id": file_id}, "params": {"preset": "mp4_360p"}}
    ids = [client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"] for _ in range(2)]
    done = [wait_for_job(client, tenant, i, timeout=60) for i in ids]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    assert [d["attempts"] for d in done] == [1, 1]
