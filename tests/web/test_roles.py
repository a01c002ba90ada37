"""Roles and scopes (faktry/permissions.py): every guarded route of the URL map, tried by a
person of every role and by scoped API keys, answers as the one table says. A new route
that the table does not name fails here, as does a table that drifts from docs/api.md."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from faktry import clock, permissions
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import ApiKey, User, create_api_key

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "zzz_" + "0" * 24


def guarded(app: Any) -> list[tuple[Any, str]]:
    """Every (rule, method) under /v1 whose view needs credentials."""
    found = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not rule.rule.startswith("/v1/") or not getattr(view, "faktry_guarded", False):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule, method))
    return found


def url(rule: Any) -> str:
    return re.sub(
        r"<(?:[^:<>]+:)?([^<>]+)>",
        lambda m: "360p/index.m3u8" if m.group(1) == "relpath" else UNKNOWN,
        rule.rule,
    )


@pytest.fixture
def people(settings: Any, make_tenant: Any) -> dict[str, dict[str, str]]:
    """One account with a person of each role, each with an API key of every scope its role has."""
    owner = make_tenant(credits=10)
    engine = make_engine(settings.resolved_database_url)
    made = {"owner": owner.headers}
    with transaction(make_sessionmaker(engine)) as session:
        for role in permissions.ROLES[1:]:
            user = User(tenant_id=owner.id, email=f"{role}-{owner.id}@example.com", role=role)
            session.add(user)
            session.flush()
            _, plain = create_api_key(session, tenant_id=owner.id, user_id=user.id, bcrypt_rounds=4)
            made[role] = {"Authorization": f"Bearer {plain}"}
    engine.dispose()
    return made


def test_every_guarded_route_is_named_by_the_table(app: Any) -> None:
    routes = guarded(app)
    assert len(routes) > 80
    unnamed = [f"{m} {r.rule}" for r, m in routes if permissions.required(m, r.rule) is None]
    assert unnamed == [], "add these routes to faktry/permissions.py RESOURCES or EXCEPTIONS"
    stale = [f"{m} {p}" for m, p in permissions.EXCEPTIONS if not any(
        r.rule == "/v1" + p and m == meth for r, meth in routes)]  # fmt: skip
    assert stale == [], "EXCEPTIONS names routes that do not exist"


def test_every_role_against_every_guarded_route(app: Any, people: dict[str, dict[str, str]]) -> None:
    client = app.test_client()
    wrong = []
    for rule, method in guarded(app):
        needed = permissions.required(method, rule.rule)
        if (method, rule.rule) == ("DELETE", "/v1/members/<user_id>"):
            needed = "members:write"  # someone else's id: leaving is the only removal without it
        if rule.rule == "/v1/events/stream":
            continue  # every role reads jobs; an open stream would hold the test (tests/web/test_streams.py)
        for role, headers in people.items():
            r = client.open(url(rule), method=method, headers=headers, json={})
            body = r.get_json(silent=True) or {}
            refused = r.status_code == 403 and body.get("error", {}).get("code") == "insufficient_scope"
            allowed = (
                needed in (permissions.SELF, permissions.STAFF) or needed in permissions.ROLE_SCOPES[role]
            )
            if refused == allowed:
                wrong.append(f"{role}: {method} {rule.rule} -> {r.status_code} {body.get('error')}")
            if refused and (body["error"]["scope"] != needed or needed not in body["error"]["message"]):
                wrong.append(f"{role}: {method} {rule.rule}: the refusal does not name {needed}")
    assert wrong == []


def test_a_key_may_do_what_its_scopes_and_its_makers_role_both_allow(
    client: Any, tenant: Any, settings: Any
) -> None:
    r = client.post(
        "/v1/keys", json={"name": "reader", "scopes": ["jobs:read", "files:read"]}, headers=tenant.headers
    )
    assert r.status_code == 201, r.json
    assert r.json["scopes"] == ["files:read", "jobs:read"]
    reader = {"Authorization": f"Bearer {r.json['key']}"}
    assert client.get("/v1/jobs", headers=reader).status_code == 200
    refused = client.post("/v1/jobs", json={"type": "media.probe"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "insufficient_scope"
    assert refused.json["error"]["scope"] == "jobs:write"
    assert "jobs:write" in refused.json["error"]["message"]
    # A key cannot make a key with more than it has.
    more = client.post("/v1/keys", json={"scopes": ["jobs:write"]}, headers=reader)
    assert more.status_code == 403 and more.json["error"]["scope"] == "keys:write"
    # The listing shows each key's scopes.
    listed = {k["name"]: k for k in client.get("/v1/keys", headers=tenant.headers).json["data"]}
    assert listed["reader"]["scopes"] == ["files:read", "jobs:read"]

    # Demoting the maker narrows the key at once.
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as session:
        maker = session.get(User, tenant.user_id)
        session.add(User(tenant_id=tenant.id, email=f"second-{tenant.id}@example.com", role="owner"))
        maker.role = "billing"
    engine.dispose()
    assert client.get("/v1/jobs", headers=reader).status_code == 200  # billing reads jobs
    assert client.get("/v1/files", headers=reader).status_code == 200
    assert client.get("/v1/brands", headers=tenant.headers).json["error"]["scope"] == "brands:read"


@pytest.mark.parametrize(
    ("scopes", "field"),
    [(["jobs:fly"], "scopes"), ([], "scopes"), ("jobs:read", "scopes"), ([1], "scopes")],
)
def test_bad_scopes_are_refused_and_no_key_is_made(client: Any, tenant: Any, scopes: Any, field: str) -> None:
    r = client.post("/v1/keys", json={"scopes": scopes}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == field
    assert len(client.get("/v1/keys", headers=tenant.headers).json["data"]) == 1


def test_a_key_with_an_expiry_is_refused_after_it(client: Any, tenant: Any, settings: Any) -> None:
    soon = (clock.now().replace(microsecond=0)).isoformat()
    assert client.post("/v1/keys", json={"expires_at": soon}, headers=tenant.headers).status_code == 422
    assert client.post("/v1/keys", json={"expires_at": "tomorrow"}, headers=tenant.headers).status_code == 422
    later = clock.now().replace(year=clock.now().year + 20).isoformat()
    assert client.post("/v1/keys", json={"expires_at": later}, headers=tenant.headers).status_code == 422
    ahead = (clock.now() + timedelta(days=1)).isoformat()
    r = client.post("/v1/keys", json={"name": "brief", "expires_at": ahead}, headers=tenant.headers)
    assert r.status_code == 201 and r.json["expires_at"]
    brief = {"Authorization": f"Bearer {r.json['key']}"}
    assert client.get("/v1/jobs", headers=brief).status_code == 200
    clock.freeze(clock.now() + timedelta(days=1, seconds=1))
    expired = client.get("/v1/jobs", headers=brief)
    assert expired.status_code == 401 and expired.json["error"]["code"] == "api_key_expired"
    listed = {k["name"]: k for k in client.get("/v1/keys", headers=tenant.headers).json["data"]}
    assert listed["brief"]["active"] is False


def test_members_roles_and_the_last_owner(
    client: Any, people: dict[str, dict[str, str]], settings: Any
) -> None:
    owner, admin, viewer = people["owner"], people["admin"], people["viewer"]
    listed = client.get("/v1/members", headers=viewer).json["data"]
    assert sorted(m["role"] for m in listed) == sorted(permissions.ROLES)
    ids = {m["role"]: m["id"] for m in listed}
    # A viewer cannot change roles; an admin can, but not make an owner.
    r = client.patch(f"/v1/members/{ids['developer']}", json={"role": "viewer"}, headers=viewer)
    assert r.status_code == 403 and r.json["error"]["scope"] == "members:write"
    r = client.patch(f"/v1/members/{ids['developer']}", json={"role": "billing"}, headers=admin)
    assert r.status_code == 200 and r.json["role"] == "billing"
    r = client.patch(f"/v1/members/{ids['developer']}", json={"role": "owner"}, headers=admin)
    assert r.status_code == 403 and r.json["error"]["code"] == "owner_only"
    r = client.patch(f"/v1/members/{ids['developer']}", json={"role": "chief"}, headers=owner)
    assert r.status_code == 422 and r.json["error"]["field"] == "role"
    # The last owner can be neither demoted nor removed, and cannot leave.
    r = client.patch(f"/v1/members/{ids['owner']}", json={"role": "admin"}, headers=owner)
    assert r.status_code == 409 and r.json["error"]["code"] == "last_owner"
    r = client.delete(f"/v1/members/{ids['owner']}", headers=owner)
    assert r.status_code == 409 and r.json["error"]["code"] == "last_owner"
    # With a second owner, the first may leave.
    assert (
        client.patch(f"/v1/members/{ids['admin']}", json={"role": "owner"}, headers=owner).status_code == 200
    )
    # A viewer may leave (removing themselves needs no members:write); their key stops working.
    assert client.delete(f"/v1/members/{ids['viewer']}", headers=viewer).status_code == 204
    assert client.get("/v1/jobs", headers=viewer).status_code == 401
    assert client.delete(f"/v1/members/{ids['owner']}", headers=owner).status_code == 204
    remaining = client.get("/v1/members", headers=admin).json["data"]
    assert sorted(m["role"] for m in remaining) == ["billing", "billing", "owner"]
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as session:
        revoked = session.scalars(select(ApiKey.revoked_at).where(ApiKey.user_id.is_(None))).all()
    engine.dispose()
    assert revoked and all(revoked)


def test_the_docs_table_is_the_codes_table() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Roles and scopes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        scope = cells[0].strip("`")
        documented[scope] = {
            role for role, cell in zip(permissions.ROLES, cells[1:], strict=True) if cell == "yes"
        }
    assert set(documented) == set(permissions.SCOPES)
    for scope, roles in documented.items():
        assert roles == {r for r in permissions.ROLES if scope in permissions.ROLE_SCOPES[r]}, scope


def person_pages(app: Any) -> list[Any]:
    """Every page that needs a log-in (the pages' `person` decorator marks them)."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("pages.")
        and getattr(app.view_functions[rule.endpoint], "faktry_person", False)
    ]


def test_every_page_that_needs_a_log_in_is_named_by_the_table(app: Any) -> None:
    pages = person_pages(app)
    assert len(pages) > 15
    unnamed = [r.rule for r in pages if permissions.required("GET", r.rule) is None]
    assert unnamed == [], "add these pages to faktry/permissions.py RESOURCES"


def test_every_role_against_every_page(app: Any, settings: Any, make_tenant: Any) -> None:
    owner = make_tenant(password="correct horse battery staple")
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as session:
        for role in permissions.ROLES[1:]:
            session.add(User(tenant_id=owner.id, email=f"{role}-{owner.id}@example.com", role=role,
                             password_hash=owner_hash(session, owner.user_id)))  # fmt: skip
    engine.dispose()
    wrong = []
    for role in permissions.ROLES:
        browser = app.test_client()
        email = owner.email if role == "owner" else f"{role}-{owner.id}@example.com"
        assert (
            browser.post(
                "/v1/session", json={"email": email, "password": "correct horse battery staple"}
            ).status_code
            == 201
        )
        for rule in person_pages(app):
            needed = permissions.required("GET", rule.rule)
            r = browser.get(url(rule), headers={"Accept": "text/html"})
            refused = r.status_code == 403 and b"does not include this page" in r.data
            allowed = (
                needed in (permissions.SELF, permissions.STAFF) or needed in permissions.ROLE_SCOPES[role]
            )
            if refused == allowed:
                wrong.append(f"{role}: {rule.rule} -> {r.status_code}")
    assert wrong == []


def owner_hash(session: Any, user_id: str) -> str:
    return str(session.get(User, user_id).password_hash)
