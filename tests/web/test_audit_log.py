"""The audit log: each security event of an account leaves one entry, written with its event
(a refused change leaves none), readable by owners and admins only, filterable, in the
export, never another account's; faktry's staff show as staff."""

from __future__ import annotations

from typing import Any

from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import User, create_api_key, hash_secret

PASSWORD = "correct horse battery staple"


def actions(client: Any, headers: dict[str, str], **filters: str) -> list[str]:
    r = client.get("/v1/audit-log", query_string={"limit": 100, **filters}, headers=headers)
    assert r.status_code == 200, r.json
    return [e["action"] for e in r.json["data"]]


def member(settings: Any, tenant_id: str, role: str) -> tuple[str, dict[str, str]]:
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as session:
        user = User(tenant_id=tenant_id, email=f"{role}-{tenant_id}@example.com", role=role,
                    password_hash=hash_secret(PASSWORD, rounds=4))  # fmt: skip
        session.add(user)
        session.flush()
        _, plain = create_api_key(session, tenant_id=tenant_id, user_id=user.id, bcrypt_rounds=4)
        user_id = user.id
    engine.dispose()
    return user_id, {"Authorization": f"Bearer {plain}"}


def test_each_security_event_leaves_one_entry(app: Any, client: Any, make_tenant: Any, settings: Any) -> None:
    owner = make_tenant(password=PASSWORD)
    other = make_tenant(password=PASSWORD)
    browser = app.test_client()
    assert (
        browser.post("/v1/session", json={"email": owner.email, "password": "wrong one"}).status_code == 401
    )
    assert (
        browser.post("/v1/session", json={"email": "nobody@example.com", "password": "x" * 12}).status_code
        == 401
    )
    login = browser.post("/v1/session", json={"email": owner.email, "password": PASSWORD})
    csrf = {"X-CSRF-Token": login.json["csrf_token"]}
    key = client.post("/v1/keys", json={"name": "ci", "scopes": ["jobs:read"]}, headers=owner.headers).json
    assert client.delete(f"/v1/keys/{key['id']}", headers=owner.headers).status_code == 200
    dev_id, _ = member(settings, owner.id, "developer")
    assert (
        client.patch(f"/v1/members/{dev_id}", json={"role": "viewer"}, headers=owner.headers).status_code
        == 200
    )
    assert (
        client.patch(f"/v1/members/{dev_id}", json={"role": "viewer"}, headers=owner.headers).status_code
        == 200
    )
    assert client.delete(f"/v1/members/{dev_id}", headers=owner.headers).status_code == 204
    assert client.get("/v1/account/export", headers=owner.headers).status_code == 200
    assert client.post("/v1/account/exports", headers=owner.headers).status_code == 202
    assert browser.put("/v1/account/restriction", json={"restricted": True}, headers=csrf).status_code == 200
    assert browser.put("/v1/account/restriction", json={"restricted": False}, headers=csrf).status_code == 200
    assert client.delete("/v1/sessions", headers=owner.headers).status_code == 204
    # A refused change leaves no entry.
    assert (
        client.patch(
            f"/v1/members/{owner.user_id}", json={"role": "admin"}, headers=owner.headers
        ).status_code
        == 409
    )

    seen = actions(client, owner.headers)
    assert seen == [
        "sessions_ended",
        "restriction_changed",
        "restriction_changed",
        "export_requested",
        "export_requested",
        "member_removed",
        "member_role_changed",
        "key_revoked",
        "key_created",
        "login",
        "login_failed",
    ]  # fmt: skip  (newest first; the second, unchanged role change left nothing)
    entries = {
        e["action"]: e for e in client.get("/v1/audit-log?limit=100", headers=owner.headers).json["data"]
    }
    assert (
        entries["login_failed"]["via"] == "anonymous"
        and entries["login_failed"]["data"]["email"] == owner.email
    )
    assert entries["login"]["actor"]["email"] == owner.email and entries["login"]["via"] == "session"
    assert entries["key_created"]["target"] == key["id"] and entries["key_created"]["data"]["scopes"] == [
        "jobs:read"
    ]
    assert entries["key_created"]["actor"]["api_key_id"] and entries["key_created"]["via"] == "api_key"
    assert entries["member_role_changed"]["data"] == {
        "email": f"developer-{owner.id}@example.com",
        "from": "developer",
        "to": "viewer",
    }
    # Filters.
    assert actions(client, owner.headers, action="key_created") == ["key_created"]
    assert set(actions(client, owner.headers, actor=owner.email)) >= {"login", "key_created"}
    assert "login_failed" not in actions(client, owner.headers, actor=owner.user_id)
    bad = client.get("/v1/audit-log?action=hack", headers=owner.headers)
    assert bad.status_code == 422 and bad.json["error"]["field"] == "action"
    # Another account's log is its own.
    assert actions(client, other.headers) == []
    # In the export.
    exported = client.get("/v1/account/export", headers=owner.headers).json["audit_log"]
    assert {e["action"] for e in exported} >= set(seen)


def test_only_owners_and_admins_read_the_log(client: Any, make_tenant: Any, settings: Any) -> None:
    owner = make_tenant()
    for role, allowed in (("admin", True), ("developer", False), ("billing", False), ("viewer", False)):
        _, headers = member(settings, owner.id, role)
        r = client.get("/v1/audit-log", headers=headers)
        assert (r.status_code == 200) is allowed, (role, r.status_code)
        if not allowed:
            assert (
                r.json["error"]["code"] == "insufficient_scope" and r.json["error"]["scope"] == "audit:read"
            )


def test_staff_actions_show_as_staff(client: Any, make_tenant: Any) -> None:
    owner = make_tenant()
    staff = make_tenant(admin=True)
    r = client.post(
        f"/v1/admin/tenants/{owner.id}/credits",
        json={"credits": 5, "reason": "goodwill"},
        headers=staff.headers,
    )
    assert r.status_code == 201, r.json
    [entry] = client.get("/v1/audit-log", headers=owner.headers).json["data"]
    assert entry["action"] == "staff_credits_granted" and entry["via"] == "staff"
    assert entry["actor"] == {"user_id": None, "email": None, "api_key_id": None, "staff": True}
    assert entry["data"] == {"millicredits": 5000, "reason": "goodwill"}
    assert staff.email not in str(entry)
