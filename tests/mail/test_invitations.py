"""Invitations: an owner or admin invites someone by email with a role; the link's token
works once, before it expires, for an address without an account; accepting creates the
person with that role and logs them in; only an owner invites an owner; revoked and
replaced invitations no longer work; every step is in the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from tests.mail.conftest import drain

PASSWORD = "correct horse battery staple"


def token_for(
    client: Any, tenant: Any, email: str, role: str = "developer", *, smtp: Any, settings: Any
) -> str:
    """Invite as the tenant's owner; the token of the link the invitation's mail carries."""
    r = client.post("/v1/invitations", json={"email": email, "role": role}, headers=tenant.headers)
    assert r.status_code == 201, r.json
    engine = make_engine(settings.resolved_database_url)
    drain(make_sessionmaker(engine), settings)
    engine.dispose()
    [mail] = [m for m in smtp.to(email) if "invites you" in m.subject][-1:]
    assert role in mail.text and tenant.email in mail.subject
    return mail.token("/invitations/accept")


def accept(app: Any, token: str, password: str = PASSWORD) -> Any:
    return app.test_client().post(
        "/v1/invitations/accept", json={"token": token, "password": password, "confirm_age_16": True}
    )


def test_invite_list_accept_and_join_with_the_role(
    app: Any, client: Any, tenant: Any, settings: Any, smtp: Any
) -> None:
    r = client.post(
        "/v1/invitations", json={"email": "New.Person@Example.com", "role": "billing"}, headers=tenant.headers
    )
    assert r.status_code == 201, r.json
    assert r.json["email"] == "new.person@example.com" and r.json["status"] == "pending"
    listed = client.get("/v1/invitations", headers=tenant.headers).json["data"]
    assert [(i["email"], i["role"], i["status"]) for i in listed] == [
        ("new.person@example.com", "billing", "pending")
    ]

    token = token_for(
        client, tenant, "new.person@example.com", "billing", smtp=smtp, settings=settings
    )  # replaces the first
    page = app.test_client().get(f"/invitations/accept?token={token}")
    assert page.status_code == 200 and b"new.person@example.com" in page.data and b"billing" in page.data
    joined = accept(app, token)
    assert joined.status_code == 201, joined.json
    assert joined.json["tenant_id"] == tenant.id and joined.json["csrf_token"]
    members = client.get("/v1/members", headers=tenant.headers).json["data"]
    assert {(m["email"], m["role"]) for m in members} >= {("new.person@example.com", "billing")}
    # The token works once; the replaced invitation never again.
    again = accept(app, token)
    assert again.status_code == 409 and again.json["error"]["code"] == "invitation_accepted"
    states = sorted(i["status"] for i in client.get("/v1/invitations", headers=tenant.headers).json["data"])
    assert states == ["accepted", "revoked"]
    log = [e["action"] for e in client.get("/v1/audit-log", headers=tenant.headers).json["data"]]
    assert log[:2] == ["member_joined", "member_invited"]
    # The owners hear of it.
    engine = make_engine(settings.resolved_database_url)
    drain(make_sessionmaker(engine), settings)
    engine.dispose()
    notice = [m for m in smtp.to(tenant.email) if "a member joined" in m.subject]
    assert len(notice) == 1 and "new.person@example.com" in notice[0].text and "billing" in notice[0].text


def test_an_account_that_has_not_verified_its_address_cannot_invite(app: Any, client: Any) -> None:
    browser = app.test_client()
    signup = {"email": "fresh@example.com", "password": PASSWORD, "confirm_age_16": True}
    assert browser.post("/v1/signup", json=signup).status_code == 202
    login = browser.post("/v1/session", json={"email": "fresh@example.com", "password": PASSWORD})
    csrf = {"X-CSRF-Token": login.json["csrf_token"]}
    r = browser.post("/v1/invitations", json={"email": "friend@example.com", "role": "viewer"}, headers=csrf)
    assert r.status_code == 403 and r.json["error"]["code"] == "email_unverified"
    assert browser.get("/v1/invitations").json["data"] == []


def test_an_invitation_expires_and_can_be_revoked(
    app: Any, client: Any, tenant: Any, settings: Any, smtp: Any
) -> None:
    token = token_for(client, tenant, "late@example.com", smtp=smtp, settings=settings)
    clock.freeze(clock.now() + timedelta(days=settings.invitation_days, seconds=1))
    late = accept(app, token)
    assert late.status_code == 410 and late.json["error"]["code"] == "invitation_expired"
    page = app.test_client().get(f"/invitations/accept?token={token}")
    assert page.status_code == 410 and b"expired" in page.data
    clock.reset()
    made = client.post(
        "/v1/invitations", json={"email": "gone@example.com", "role": "viewer"}, headers=tenant.headers
    ).json
    assert client.delete(f"/v1/invitations/{made['id']}", headers=tenant.headers).json["status"] == "revoked"
    assert accept(app, "not-a-token").json["error"]["code"] == "invitation_not_found"


def test_what_cannot_be_accepted_or_sent_is_refused(
    app: Any, client: Any, tenant: Any, make_tenant: Any, settings: Any, smtp: Any
) -> None:
    taken = make_tenant()
    token = token_for(client, tenant, taken.email, smtp=smtp, settings=settings)
    r = accept(app, token)
    assert r.status_code == 409 and r.json["error"]["code"] == "email_taken"
    short = accept(
        app, token_for(client, tenant, "short@example.com", smtp=smtp, settings=settings), password="short"
    )
    assert short.status_code == 422 and short.json["error"]["field"] == "password"
    for body, field in (
        ({"email": "nope", "role": "viewer"}, "email"),
        ({"email": "a@example.com", "role": "boss"}, "role"),
    ):
        bad = client.post("/v1/invitations", json=body, headers=tenant.headers)
        assert bad.status_code == 422 and bad.json["error"]["field"] == field
    # Refused bodies left no invitation (the two made above are there, pending).
    assert len(client.get("/v1/invitations", headers=tenant.headers).json["data"]) == 2


def test_only_an_owner_invites_an_owner_and_only_managers_invite(
    client: Any, tenant: Any, settings: Any
) -> None:
    from faktry.tenancy import User, create_api_key

    engine = make_engine(settings.resolved_database_url)
    keys = {}
    with transaction(make_sessionmaker(engine)) as session:
        for role in ("admin", "developer"):
            user = User(tenant_id=tenant.id, email=f"{role}-{tenant.id}@example.com", role=role)
            session.add(user)
            session.flush()
            _, plain = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
            keys[role] = {"Authorization": f"Bearer {plain}"}
    engine.dispose()
    r = client.post(
        "/v1/invitations", json={"email": "boss@example.com", "role": "owner"}, headers=keys["admin"]
    )
    assert r.status_code == 403 and r.json["error"]["code"] == "owner_only"
    r = client.post(
        "/v1/invitations", json={"email": "dev@example.com", "role": "viewer"}, headers=keys["developer"]
    )
    assert r.status_code == 403 and r.json["error"]["scope"] == "members:write"
    assert (
        client.post(
            "/v1/invitations", json={"email": "boss@example.com", "role": "owner"}, headers=tenant.headers
        ).status_code
        == 201
    )
