"""How a job's events find the endpoints they go to: ``accounts.webhooks`` says whether the
tenant has any, read with rows the job path reads anyway, so a tenant without webhooks
pays no lookup, and one that adds an endpoint gets every event from then on."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select

from faktry.db import memo, transaction
from pipelines import runner
from quotas.models import Account
from tests.web.helpers import upload
from tests.webhooks.conftest import drain


def flag(sessions, tenant_id: str) -> bool | None:
    with transaction(sessions) as session:
        return session.scalar(select(Account.webhooks).where(Account.tenant_id == tenant_id))


def test_the_account_says_whether_the_tenant_has_an_enabled_endpoint(
    client, tenant, receiver, sessions, png_image
):
    assert not flag(sessions, tenant.id)
    hook = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    assert flag(sessions, tenant.id) is True
    path = f"/v1/webhook-endpoints/{hook['id']}"
    assert client.patch(path, json={"enabled": False}, headers=tenant.headers).status_code == 200
    assert flag(sessions, tenant.id) is False
    assert client.patch(path, json={"enabled": True}, headers=tenant.headers).status_code == 200
    assert flag(sessions, tenant.id) is True
    assert client.delete(path, headers=tenant.headers).status_code == 204
    assert flag(sessions, tenant.id) is False
    # A job's own webhook counts too.
    image = upload(client, tenant, png_image).json["id"]
    job = {"type": "media.probe", "input": {"file_id": image}, "webhook": {"url": receiver.url}}
    assert client.post("/v1/jobs", json=job, headers=tenant.headers).status_code == 202
    assert flag(sessions, tenant.id) is True


def test_an_endpoint_added_after_the_submit_gets_the_jobs_later_events(
    client, tenant, receiver, sessions, policy, runtime, png_image
):
    image = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": image}, "params": {"width": 8, "height": 8}}
    job_id = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
    client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers)
    runner.run(runtime.context, job_id)
    assert drain(sessions, policy) == ["delivered", "delivered"]
    sent = [json.loads(g.body) for g in receiver.got]
    assert [p["type"] for p in sent] == ["job.started", "job.succeeded"]
    assert {p["data"]["job_id"] for p in sent} == {job_id}


def test_the_events_of_a_tenant_without_webhooks_look_for_no_endpoint(client, tenant, runtime, png_image):
    image = upload(client, tenant, png_image).json["id"]
    body = {"type": "image.resize", "input": {"file_id": image}, "params": {"width": 8, "height": 8}}
    client.post("/v1/jobs", json=body, headers=tenant.headers)  # the account row exists from here
    engine = runtime.context.sessions.kw["bind"]
    web_engine = client.application.extensions["faktry"].sessions.kw["bind"]
    seen: list[str] = []

    def statement(conn, cursor, text, *args) -> None:  # type: ignore[no-untyped-def]
        seen.append(text)

    for e in {engine, web_engine}:
        event.listen(e, "before_cursor_execute", statement)
    try:
        job_id = client.post("/v1/jobs", json=body, headers=tenant.headers).json["id"]
        runner.run(runtime.context, job_id)
    finally:
        for e in {engine, web_engine}:
            event.remove(e, "before_cursor_execute", statement)
    assert any("INSERT INTO job_events" in s for s in seen)  # created, started, succeeded
    assert not [s for s in seen if "webhook_endpoints" in s]


def test_what_a_transaction_remembers_ends_with_it(sessions):
    with sessions() as session:
        with session.begin():
            memo(session)["seen"] = True
            assert memo(session) == {"seen": True}
        with session.begin():
            assert memo(session) == {}


@pytest.mark.parametrize("enabled", [True, False])
def test_a_job_events_lookup_is_one_read_per_transaction(client, tenant, receiver, sessions, enabled):
    """Many events of one transaction (a batch of jobs) read the endpoints once."""
    client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "enabled": enabled}, headers=tenant.headers
    )
    from pipelines.webhooks import outbox

    reads: list[str] = []

    def statement(conn, cursor, text, *args) -> None:  # type: ignore[no-untyped-def]
        if "FROM webhook_endpoints" in text:
            reads.append(text)

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", statement)
    try:
        with transaction(sessions) as session:
            made = [outbox.record(session, tenant.id, outbox.TEST, {"n": n}) for n in range(5)]
    finally:
        event.remove(engine, "before_cursor_execute", statement)
    assert len(reads) == 1
    assert [len(ids) for ids in made] == [1 if enabled else 0] * 5
