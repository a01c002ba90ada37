"""API keys cost one bcrypt per key across processes, and revocation still takes effect at once.

Two apps made by `create_app` with the same settings stand for two web processes: each has
its own in-process key cache, and both share the Redis namespace and the database. bcrypt is
counted by wrapping `faktry.tenancy.check_secret` (the real check still runs)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis

from faktry import clock
from faktry.tenancy import revoke_api_key
from tests import services as svc
from web import create_app
from workers.broker import BrokerSender

#: A cheap authenticated request: it does nothing but check the key.
WHOAMI = "/v1/session"


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every bcrypt check of an API key or password from now on (the hash checked)."""
    from faktry import tenancy

    calls: list[str] = []
    real = tenancy.check_secret

    def counting(secret: str, hashed: str) -> bool:
        calls.append(hashed)
        return real(secret, hashed)

    monkeypatch.setattr(tenancy, "check_secret", counting)
    return calls


@pytest.fixture
def new_process(settings: Any, runtime: Any) -> Callable[..., Any]:
    """A test client of a new app on the same settings (unless overridden): a new process."""

    def make(**overrides: Any) -> Any:
        app = create_app(settings.replace(**overrides), sender=BrokerSender(runtime.broker))
        app.testing = True
        return app.test_client()

    return make


def _new_key(client: Any, tenant: Any) -> tuple[str, dict[str, str]]:
    created = client.post("/v1/keys", json={"name": "extra"}, headers=tenant.headers)
    assert created.status_code == 201
    return created.json["id"], {"Authorization": f"Bearer {created.json['key']}"}


def _redis_dump(namespace: str) -> dict[bytes, bytes]:
    """What Redis holds about API keys: name → value (a set's members joined by spaces)."""
    client = redis.Redis.from_url(svc.REDIS_URL)
    try:
        dump = {}
        for name in client.scan_iter(match=f"{namespace}:apikeys:*"):
            if client.type(name) == b"set":
                dump[name] = b" ".join(sorted(client.smembers(name)))
            else:
                dump[name] = client.get(name) or b""
        return dump
    finally:
        client.close()


def _mentions(dump: dict[bytes, bytes], key_id: str) -> bool:
    return any(key_id.encode() in name or value == key_id.encode() for name, value in dump.items())


def test_a_thousand_requests_with_one_key_in_two_processes_cost_one_bcrypt(new_process, tenant, bcrypt_calls):
    first, second = new_process(), new_process()
    for i in range(500):
        for web in (first, second):
            r = web.get(WHOAMI, headers=tenant.headers)
            assert r.status_code == 200, (i, r.json)
            assert r.json["tenant_id"] == tenant.id
    assert len(bcrypt_calls) == 1


def test_a_hot_key_costs_no_redis_lookup_while_the_process_remembers_it(new_process, tenant, monkeypatch):
    web = new_process()
    assert web.get(WHOAMI, headers=tenant.headers).status_code == 200
    from faktry.tenancy import VerifiedKeys

    lookups: list[bytes] = []
    real = VerifiedKeys.get
    monkeypatch.setattr(VerifiedKeys, "get", lambda self, d: lookups.append(d) or real(self, d))
    for _ in range(50):
        assert web.get(WHOAMI, headers=tenant.headers).status_code == 200
    assert lookups == []
    other = new_process()
    assert other.get(WHOAMI, headers=tenant.headers).status_code == 200
    assert len(lookups) == 1


def test_a_revoked_key_is_refused_on_the_very_next_request_in_every_process(
    new_process, tenant, settings, bcrypt_calls
):
    first, second = new_process(), new_process()
    key_id, extra = _new_key(first, tenant)
    for web in (first, second):
        assert web.get(WHOAMI, headers=extra).status_code == 200
    assert _mentions(_redis_dump(settings.redis_namespace), key_id)
    assert first.delete(f"/v1/keys/{key_id}", headers=tenant.headers).status_code == 200
    for web in (second, first):
        r = web.get(WHOAMI, headers=extra)
        assert r.status_code == 401 and r.json["error"]["code"] == "invalid_api_key"
    assert not _mentions(_redis_dump(settings.redis_namespace), key_id)
    for web in (first, second):
        assert web.get(WHOAMI, headers=tenant.headers).status_code == 200
    assert len(bcrypt_calls) == 2  # the tenant's key and the extra one, once each


def test_a_key_revoked_without_touching_redis_is_refused_at_once_too(new_process, tenant, settings):
    # `faktry keys revoke`, or an operator's UPDATE, changes only the row: the row decides.
    first, second = new_process(), new_process()
    key_id, extra = _new_key(first, tenant)
    for web in (first, second):
        assert web.get(WHOAMI, headers=extra).status_code == 200
    with svc.db_session(settings.resolved_database_url) as session:
        revoke_api_key(session, key_id)
    for web in (first, second, new_process()):
        assert web.get(WHOAMI, headers=extra).status_code == 401


def test_a_verified_key_survives_a_redis_flush_and_a_revoked_one_stays_refused(
    new_process, tenant, settings, bcrypt_calls
):
    first = new_process()
    key_id, extra = _new_key(first, tenant)
    assert first.get(WHOAMI, headers=tenant.headers).status_code == 200
    assert first.get(WHOAMI, headers=extra).status_code == 200
    assert first.delete(f"/v1/keys/{key_id}", headers=tenant.headers).status_code == 200
    assert len(bcrypt_calls) == 2
    svc.clear_namespace(settings.redis_namespace)
    assert _redis_dump(settings.redis_namespace) == {}

    later = new_process()  # remembers nothing: Redis has forgotten, the database has not
    assert later.get(WHOAMI, headers=tenant.headers).status_code == 200
    assert len(bcrypt_calls) == 3  # once more, then remembered again
    for web in (first, later, new_process()):
        assert web.get(WHOAMI, headers=tenant.headers).status_code == 200
        assert web.get(WHOAMI, headers=extra).status_code == 401
    assert len(bcrypt_calls) == 3  # a revoked key costs no bcrypt


def test_keys_authenticate_with_bcrypt_while_redis_is_unreachable(new_process, tenant, bcrypt_calls):
    away = f"redis://127.0.0.1:{svc.free_port()}/0"
    first, second = new_process(redis_url=away), new_process(redis_url=away)
    for _ in range(20):
        for web in (first, second):
            assert web.get(WHOAMI, headers=tenant.headers).status_code == 200
    assert len(bcrypt_calls) == 2  # once per process: each remembers the key itself

    key_id, extra = _new_key(first, tenant)
    assert second.get(WHOAMI, headers=extra).status_code == 200
    assert first.delete(f"/v1/keys/{key_id}", headers=tenant.headers).status_code == 200
    assert second.get(WHOAMI, headers=extra).status_code == 401

    wrong = {"Authorization": f"Bearer {tenant.key[:-4]}abcd"}
    assert second.get(WHOAMI, headers=wrong).status_code == 401


def test_redis_holds_a_keyed_hmac_of_the_key_never_the_key_or_its_plain_hash(new_process, tenant, settings):
    assert new_process().get(WHOAMI, headers=tenant.headers).status_code == 200
    dump = _redis_dump(settings.redis_namespace)
    assert dump, "the verified key is remembered in Redis"
    stored = b" ".join([*dump.keys(), *dump.values()])
    assert tenant.key.encode() not in stored
    assert tenant.key[-16:].encode() not in stored  # nor a part of its secret
    for plain_hash in (hashlib.sha256, hashlib.sha512, hashlib.blake2b):
        assert plain_hash(tenant.key.encode()).hexdigest().encode() not in stored

    # Another secret key makes another digest of the same key.
    other_secret = new_process(secret_key="another-secret")
    assert other_secret.get(WHOAMI, headers=tenant.headers).status_code == 200
    verified = [n for n in _redis_dump(settings.redis_namespace) if b":verified:" in n]
    assert len(verified) == 2


def test_last_use_is_stamped_at_most_once_a_minute(new_process, tenant):
    web = new_process()
    assert web.get(WHOAMI, headers=tenant.headers).status_code == 200
    [first] = web.get("/v1/keys", headers=tenant.headers).json["data"]
    assert first["last_used_at"] is not None
    clock.advance(timedelta(seconds=30))
    [same] = web.get("/v1/keys", headers=tenant.headers).json["data"]
    assert same["last_used_at"] == first["last_used_at"]
    clock.advance(timedelta(seconds=31))
    web.get(WHOAMI, headers=tenant.headers)
    [later] = web.get("/v1/keys", headers=tenant.headers).json["data"]
    assert later["last_used_at"] > first["last_used_at"]
