"""Delivery from the outbox: retries until a 2xx, the log, 410, timeouts, the sweep."""

from __future__ import annotations

import json

from sqlalchemy import select

from faktry.db import transaction
from pipelines.webhooks import delivery, outbox
from pipelines.webhooks.models import WebhookEndpoint, WebhookMessage
from tests.webhooks.conftest import drain

BASE = "/v1/webhook-endpoints"


def make_endpoint(client, tenant, url, **body):
    r = client.post("/v1/webhook-endpoints", json={"url": url, **body}, headers=tenant.headers)
    assert r.status_code == 201, r.json
    return r.json


def test_a_receiver_failing_three_times_then_answering_gets_it_acknowledged_once_after_four_attempts(
    client, tenant, receiver, sessions, policy, clip_small
):
    from tests.web.helpers import upload

    receiver.script = [500, 500, 500, 200]
    hook = make_endpoint(client, tenant, receiver.url, events=["job.created"])
    video = upload(client, tenant, clip_small).json["id"]
    job = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": video}}, headers=tenant.headers
    ).json

    assert drain(sessions, policy) == ["retry", "retry", "retry", "delivered"]

    assert len(receiver.got) == 4
    assert len({r.headers["webhook-id"] for r in receiver.got}) == 1  # one message, four tries
    sent = json.loads(receiver.got[-1].body)
    assert sent["type"] == "job.created" and sent["data"]["job_id"] == job["id"]
    assert isinstance(sent["seq"], int) and sent["seq"] > 0  # the job event's sequence number
    log = client.get(f"/v1/webhook-endpoints/{hook['id']}/messages", headers=tenant.headers).json["data"]
    assert len(log) == 1 and log[0]["status"] == "delivered"
    assert [a["status_code"] for a in log[0]["log"]] == [500, 500, 500, 200]
    assert log[0]["log"][0]["response_body"] == "not now"
    assert drain(sessions, policy) == []  # acknowledged: never sent again


def test_an_event_rolled_back_sends_nothing(settings, sessions, tenant, receiver, client):
    make_endpoint(client, tenant, receiver.url)
    try:
        with transaction(sessions) as session:
            outbox.record(session, tenant.id, outbox.TEST, {"n": 1})
            raise RuntimeError("the event's transaction fails")
    except RuntimeError:
        pass
    with transaction(sessions) as session:
        assert session.scalars(select(WebhookMessage)).all() == []


def test_a_410_disables_the_endpoint_and_tells_the_tenants_other_endpoints(
    client, tenant, receiver, sessions, policy
):
    gone = make_endpoint(client, tenant, receiver.url + "?gone")
    other = make_endpoint(client, tenant, receiver.url + "?other", events=["webhook_endpoint.disabled"])
    receiver.script = [410, 200]
    client.post(f"/v1/webhook-endpoints/{gone['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["failed", "delivered"]
    got = client.get(f"/v1/webhook-endpoints/{gone['id']}", headers=tenant.headers).json
    assert got["enabled"] is False and got["disabled_reason"] == "gone"
    told = json.loads(receiver.got[-1].body)
    assert told["type"] == "webhook_endpoint.disabled" and told["data"]["endpoint_id"] == gone["id"]
    assert other["id"] != gone["id"]


def test_an_endpoint_failing_for_days_is_disabled(client, tenant, receiver, sessions, settings):
    from datetime import timedelta

    from faktry import clock

    hook = make_endpoint(client, tenant, receiver.url)
    receiver.script = [503]
    pol = delivery.Policy.from_settings(settings, disable_after=3 * 86400.0, schedule=(3600.0,) * 100)
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    for _ in range(4):
        drain(sessions, pol)
        clock.advance(timedelta(days=1, seconds=5))
    with transaction(sessions) as session:
        endpoint = session.get(WebhookEndpoint, hook["id"])
        assert endpoint is not None and not endpoint.enabled and endpoint.disabled_reason == "failing"


def test_the_tenant_is_told_of_an_endpoint_turned_off_on_the_api_and_on_every_page(
    client, make_tenant, receiver, sessions, policy
):
    person = make_tenant(password="correct horse battery")
    hook = make_endpoint(client, person, receiver.url)
    receiver.script = [410]
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=person.headers)
    drain(sessions, policy)
    [notice] = client.get("/v1/account", headers=person.headers).json["notices"]
    assert notice["kind"] == "webhook_endpoint_disabled" and notice["endpoint_id"] == hook["id"]
    assert "410" in notice["message"] and notice["reason"] == "gone"
    r = client.post("/v1/session", json={"email": person.email, "password": "correct horse battery"})
    csrf = {"X-CSRF-Token": r.json["csrf_token"]}
    page = client.get("/jobs").get_data(as_text=True)
    assert 'data-kind="webhook_endpoint_disabled"' in page and receiver.url in page
    # Turned on again, nothing more is said.
    again = client.patch(f"/v1/webhook-endpoints/{hook['id']}", json={"enabled": True}, headers=csrf)
    assert again.status_code == 200, again.json
    assert client.get("/v1/account", headers=person.headers).json["notices"] == []
    assert "webhook_endpoint_disabled" not in client.get("/jobs").get_data(as_text=True)


def test_a_receiver_that_never_answers_or_never_stops_is_cut_off_by_the_deadline(
    client, tenant, receiver, sessions, policy
):
    hook = make_endpoint(client, tenant, receiver.url)
    receiver.script = ["hang", "trickle", 200]
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["retry", "retry", "delivered"]
    log = client.get(f"/v1/webhook-endpoints/{hook['id']}/messages", headers=tenant.headers).json["data"]
    assert [a["error"] for a in log[0]["log"]] == ["timeout", "timeout", None]


def test_the_sweep_takes_turns_between_tenants(client, make_tenant, receiver, sessions, settings):
    busy, quiet = make_tenant(), make_tenant()
    for who, count in ((busy, 6), (quiet, 2)):
        hook = make_endpoint(client, who, receiver.url)
        for _ in range(count):
            client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=who.headers)
    pol = delivery.Policy.from_settings(settings, sweep_per_tenant=3)
    ids = delivery.due(sessions, pol)
    with transaction(sessions) as session:
        owners = [session.get(WebhookMessage, i).tenant_id for i in ids]  # type: ignore[union-attr]
    assert owners[:4] in ([busy.id, quiet.id] * 2, [quiet.id, busy.id] * 2)
    assert owners.count(busy.id) == 3


def test_one_endpoint_gets_at_most_its_concurrency(client, tenant, receiver, sessions, settings):
    hook = make_endpoint(client, tenant, receiver.url)
    for _ in range(3):
        client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    pol = delivery.Policy.from_settings(settings, concurrency=2)
    ids = delivery.due(sessions, pol)
    claimed = []
    for message_id in ids:
        with transaction(sessions) as session:
            claimed.append(delivery._claim(session, pol, message_id, f"lck_{message_id}") is not None)
    assert claimed == [True, True, False]


def test_claims_at_the_same_moment_never_pass_the_endpoints_concurrency(
    client, tenant, receiver, sessions, settings
):
    import threading

    hook = make_endpoint(client, tenant, receiver.url)
    for _ in range(6):
        client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    pol = delivery.Policy.from_settings(settings, concurrency=2)
    ids = delivery.due(sessions, pol)
    assert len(ids) == 6
    start = threading.Barrier(len(ids))
    claimed: list[bool] = []

    def claim(message_id: str) -> None:
        start.wait()
        try:
            with transaction(sessions) as session:
                claimed.append(delivery._claim(session, pol, message_id, f"lck_{message_id}") is not None)
        except Exception:  # a claim that lost a lock race claims nothing
            claimed.append(False)

    threads = [threading.Thread(target=claim, args=(m,)) for m in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(claimed) == 6 and sum(claimed) == 2


def test_the_log_forgets_ended_messages_after_its_keeping_time_but_never_pending_ones(
    client, tenant, receiver, sessions, policy
):
    from datetime import timedelta

    from faktry import clock

    hook = make_endpoint(client, tenant, receiver.url)
    client.post(f"{BASE}/{hook['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["delivered"]
    client.patch(f"{BASE}/{hook['id']}", json={"enabled": False}, headers=tenant.headers)
    with transaction(sessions) as session:
        pending = WebhookMessage(
            tenant_id=tenant.id, endpoint_id=hook["id"], event_type="webhook.test", payload={}
        )
        session.add(pending)
    assert delivery.prune(sessions, 3600) == 0
    clock.advance(timedelta(hours=2))
    assert delivery.prune(sessions, 3600) == 1
    with transaction(sessions) as session:
        assert [m.status for m in session.scalars(select(WebhookMessage))] == ["pending"]
