"""Authentication: API keys (bcrypt-hashed, cached briefly, revocable) and session cookies with CSRF."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from faktry.tenancy import KEY_PREFIX, ApiKey
from tests import services as svc


def _keys(settings: Any) -> list[ApiKey]:
    with svc.db_session(settings.resolved_database_url) as s:
        return list(s.scalars(select(ApiKey)))


def test_a_valid_key_reaches_the_account(client, tenant):
    r = client.get("/v1/account", headers=tenant.headers)
    assert r.status_code == 200
    assert r.json["tenant"]["id"] == tenant.id
    assert r.json["auth"] == "api_key"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nonsense", "Basic abc", f"Bearer {KEY_PREFIX}{'a' * 40}", "Token fk_live_x"],
)
def test_missing_or_malformed_keys_answer_401_with_a_json_error(client, tenant, header):
    headers = {"Authorization": header} if header else {}
    r = client.get("/v1/account", headers=headers)
    assert r.status_code == 401
    assert r.json["error"]["code"] in ("unauthenticated", "invalid_api_key")
    assert r.json["error"]["message"]


def test_only_a_bcrypt_hash_and_the_prefix_of_a_key_are_stored(client, tenant, settings):
    [row] = [k for k in _keys(settings) if k.tenant_id == tenant.id]
    assert tenant.key not in (row.key_hash, row.prefix)
    assert row.key_hash.startswith("$2b$")
    assert tenant.key.startswith(row.prefix)
    assert row.prefix.startswith(KEY_PREFIX) and len(row.prefix) == len(KEY_PREFIX) + 8


def test_a_revoked_key_stops_working_at_once_even_when_cached(client, tenant):
    assert client.get("/v1/account", headers=tenant.headers).status_code == 200  # now cached
    created = client.post("/v1/keys", json={"name": "second"}, headers=tenant.headers)
    assert created.status_code == 201
    second = {"Authorization": f"Bearer {created.json['key']}"}
    assert client.get("/v1/account", headers=second).status_code == 200
    revoked = client.delete(f"/v1/keys/{created.json['id']}", headers=tenant.headers)
    assert revoked.status_code == 200 and revoked.json["active"] is False
    r = client.get("/v1/account", headers=second)
    assert r.status_code == 401
    assert r.json["error"]["code"] == "invalid_api_key"


def test_a_cached_key_skips_bcrypt_on_later_requests(client, tenant, monkeypatch):
    from faktry import tenancy

    calls = []
    real = tenancy.check_secret
    monkeypatch.setattr(tenancy, "check_secret", lambda s, h: calls.append(1) or real(s, h))
    for _ in range(5):
        assert client.get("/v1/account", headers=tenant.headers).status_code == 200
    assert len(calls) == 1


def test_keys_list_shows_prefix_and_last_use_but_never_the_key(client, tenant):
    client.get("/v1/account", headers=tenant.headers)
    r = client.get("/v1/keys", headers=tenant.headers)
    assert r.status_code == 200
    [key] = r.json["data"]
    assert key["prefix"] and tenant.key.startswith(key["prefix"])
    assert key["last_used_at"] is not None
    assert "key" not in key and tenant.key not in r.get_data(as_text=True)


def test_another_tenants_key_id_cannot_be_revoked(client, make_tenant):
    alice, bob = make_tenant(), make_tenant()
    bob_key = client.get("/v1/keys", headers=bob.headers).json["data"][0]["id"]
    r = client.delete(f"/v1/keys/{bob_key}", headers=alice.headers)
    assert r.status_code == 404
    assert client.get("/v1/account", headers=bob.headers).status_code == 200


def test_a_session_cookie_authenticates_and_writes_need_the_csrf_token(client, make_tenant):
    person = make_tenant(password="correct horse battery")
    bad = client.post("/v1/session", json={"email": person.email, "password": "wrong"})
    assert bad.status_code == 401 and bad.json["error"]["code"] == "invalid_credentials"
    login = client.post("/v1/session", json={"email": person.email, "password": "correct horse battery"})
    assert login.status_code == 201
    token = login.json["csrf_token"]
    me = client.get("/v1/account")
    assert me.status_code == 200 and me.json["auth"] == "session"
    refused = client.post("/v1/keys", json={"name": "x"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "csrf_failed"
    wrong = client.post("/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    ok = client.post("/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201
    assert client.delete("/v1/session", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/v1/account").status_code == 401
