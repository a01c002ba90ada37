"""``/v1/webhook-endpoints``: shapes, validation, isolation, redelivery, the test event."""

from __future__ import annotations

from tests.webhooks.conftest import drain

BASE = "/v1/webhook-endpoints"


def test_an_endpoint_is_created_listed_changed_and_deleted(client, tenant, receiver):
    r = client.post(
        BASE,
        json={"url": receiver.url, "description": "orders", "events": ["job.failed"]},
        headers=tenant.headers,
    )
    assert r.status_code == 201 and r.headers["Location"] == f"{BASE}/{r.json['id']}"
    hook = r.json
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["job.failed"] and hook["enabled"]
    listed = client.get(BASE, headers=tenant.headers).json
    assert [h["id"] for h in listed["data"]] == [hook["id"]] and "secret" not in listed["data"][0]
    changed = client.patch(
        f"{BASE}/{hook['id']}", json={"enabled": False, "events": []}, headers=tenant.headers
    )
    assert changed.status_code == 200 and changed.json["enabled"] is False and changed.json["events"] == []
    assert client.get(f"{BASE}/{hook['id']}/secret", headers=tenant.headers).json["secret"] == hook["secret"]
    assert client.delete(f"{BASE}/{hook['id']}", headers=tenant.headers).status_code == 204
    assert client.get(f"{BASE}/{hook['id']}", headers=tenant.headers).status_code == 404


def test_bad_fields_are_422s_naming_the_field(client, tenant, receiver):
    cases = [
        ({"url": receiver.url, "events": ["job.exploded"]}, "events"),
        ({"url": receiver.url, "events": "job.failed"}, "events"),
        ({"url": "not a url"}, "url"),
        ({"description": "no url"}, "url"),
        ({"url": receiver.url, "enabled": "yes"}, "enabled"),
        ({"url": receiver.url, "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        r = client.post(BASE, json=body, headers=tenant.headers)
        assert r.status_code == 422 and r.json["error"]["field"] == field, (body, r.json)


def test_another_tenants_endpoint_answers_like_an_unknown_one(client, make_tenant, receiver):
    alice, bob = make_tenant(), make_tenant()
    hook = client.post(BASE, json={"url": receiver.url}, headers=alice.headers).json
    for method, path in [
        ("get", ""), ("patch", ""), ("delete", ""), ("get", "/secret"), ("post", "/rotate-secret"),
        ("post", "/test"), ("get", "/messages"),
    ]:  # fmt: skip
        r = getattr(client, method)(f"{BASE}/{hook['id']}{path}", json={}, headers=bob.headers)
        assert r.status_code == 404, (method, path)
    assert client.get(BASE, headers=bob.headers).json["data"] == []


def test_one_message_or_everything_since_a_time_can_be_sent_again(client, tenant, receiver, sessions, policy):
    hook = client.post(BASE, json={"url": receiver.url}, headers=tenant.headers).json
    first = client.post(f"{BASE}/{hook['id']}/test", headers=tenant.headers)
    assert first.status_code == 202 and first.json["type"] == "webhook.test"
    client.post(f"{BASE}/{hook['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["delivered", "delivered"]

    one = client.post(f"{BASE}/{hook['id']}/messages/{first.json['id']}/redeliver", headers=tenant.headers)
    assert one.status_code == 202 and one.json == {"redelivering": 1}
    assert drain(sessions, policy) == ["delivered"]
    assert receiver.got[-1].headers["webhook-id"] == first.json["id"]

    every = client.post(
        f"{BASE}/{hook['id']}/redeliver", json={"since": "2000-01-01T00:00:00+00:00"}, headers=tenant.headers
    )
    assert every.json == {"redelivering": 2}
    assert drain(sessions, policy) == ["delivered", "delivered"]
    assert len(receiver.got) == 5
    message = client.get(f"{BASE}/{hook['id']}/messages/{first.json['id']}", headers=tenant.headers).json
    assert message["status"] == "delivered" and len(message["log"]) == 3
    bad = client.post(f"{BASE}/{hook['id']}/redeliver", json={"since": "yesterday"}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.json["error"]["field"] == "since"


def test_a_disabled_endpoint_gets_nothing_until_enabled_again(client, tenant, receiver, sessions, policy):
    hook = client.post(BASE, json={"url": receiver.url, "enabled": False}, headers=tenant.headers).json
    r = client.post(f"{BASE}/{hook['id']}/test", headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "enabled"
