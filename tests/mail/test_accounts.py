"""The account mails, end to end through the API and a real SMTP server on loopback:
verification at sign-up, password reset by link, the notice of a sign-up with a taken
address, and the notice of a new API key."""

from __future__ import annotations

import uuid
from datetime import timedelta

from faktry import clock
from tests.mail.conftest import drain

PASSWORD = "correct horse battery staple"


def _signup(client, email: str):
    return client.post("/v1/signup", json={"email": email, "password": PASSWORD, "confirm_age_16": True})


def _login(client, email: str, password: str = PASSWORD):
    return client.post("/v1/session", json={"email": email, "password": password})


def _new_email() -> str:
    return f"person-{uuid.uuid4().hex[:8]}@example.com"


def test_signup_mails_a_link_that_verifies_the_address_once_and_unlocks_checkout(
    app, client, smtp, sessions, settings
):
    email = _new_email()
    assert _signup(client, email).status_code == 202
    assert drain(sessions, settings) == ["sent"]
    [mail] = smtp.to(email)
    assert "Confirm your email address" in mail.subject
    link = mail.link("/verify-email")
    assert link.startswith("http://127.0.0.1:8000/verify-email?token=")

    login = _login(client, email)
    assert login.status_code == 201, login.json
    csrf = {"X-CSRF-Token": login.json["csrf_token"]}
    assert client.get("/v1/session").json["email_verified"] is False
    assert client.get("/v1/profile").json["email_verified"] is False
    pack = client.get("/v1/billing/packs").json["data"][0]["id"]
    refused = client.post("/v1/billing/checkout", json={"pack": pack}, headers=csrf)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "email_unverified"

    # The page the link opens, then the API call its form makes.
    page = client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert page.status_code == 200 and b"verify-form" in page.data
    verified = client.post("/v1/email/verify", json={"token": mail.token("/verify-email")})
    assert verified.status_code == 200, verified.json
    assert verified.json == {"object": "email_verification", "email": email, "email_verified": True}
    again = client.post("/v1/email/verify", json={"token": mail.token("/verify-email")})
    assert again.status_code == 400 and again.json["error"]["code"] == "invalid_token"

    assert client.get("/v1/session").json["email_verified"] is True
    assert client.get("/v1/profile").json["email_verified"] is True
    assert client.post("/v1/billing/checkout", json={"pack": pack}, headers=csrf).status_code == 201


def test_an_unverified_person_can_ask_for_the_link_again_once_a_minute(app, client, smtp, sessions, settings):
    email = _new_email()
    _signup(client, email)
    csrf = {"X-CSRF-Token": _login(client, email).json["csrf_token"]}
    first = client.post("/v1/email/verification", headers=csrf)
    assert first.status_code == 202 and first.json["email_verified"] is False
    assert client.post("/v1/email/verification", headers=csrf).status_code == 429
    assert drain(sessions, settings) == ["sent", "sent"]
    tokens = [m.token("/verify-email") for m in smtp.to(email)]
    assert len(set(tokens)) == 2
    assert client.post("/v1/email/verify", json={"token": tokens[1]}).status_code == 200
    # Verified: asking again sends nothing.
    done = client.post("/v1/email/verification", headers=csrf)
    assert done.status_code == 200 and done.json["email_verified"] is True
    assert drain(sessions, settings) == []


def test_a_verification_link_expires(app, client, smtp, sessions, settings):
    email = _new_email()
    _signup(client, email)
    drain(sessions, settings)
    clock.freeze(clock.now())
    clock.advance(timedelta(hours=settings.email_verification_hours, seconds=1))
    late = client.post("/v1/email/verify", json={"token": smtp.to(email)[0].token("/verify-email")})
    assert late.status_code == 400 and late.json["error"]["code"] == "invalid_token"


def test_a_password_reset_link_works_once_expires_and_ends_every_session(
    app, client, make_tenant, smtp, sessions, settings
):
    person = make_tenant(password=PASSWORD)
    other_browser = app.test_client()
    assert _login(other_browser, person.email).status_code == 201
    assert other_browser.get("/v1/session").status_code == 200

    asked = client.post("/v1/password-reset", json={"email": person.email.upper()})
    assert asked.status_code == 202
    assert asked.json == {"object": "password_reset", "email": person.email}
    assert drain(sessions, settings) == ["sent"]
    [mail] = smtp.to(person.email)
    link = mail.link("/password-reset/confirm")
    assert link.startswith("http://127.0.0.1:8000/password-reset/confirm?token=")
    assert client.get(link.removeprefix("http://127.0.0.1:8000")).status_code == 200

    new_password = "a brand new passphrase"
    token = mail.token("/password-reset/confirm")
    done = client.post("/v1/password-reset/confirm", json={"token": token, "new_password": new_password})
    assert done.status_code == 200, done.json
    assert done.json == {"object": "password_reset", "email": person.email, "sessions_ended": True}
    assert other_browser.get("/v1/session").status_code == 401  # logged out everywhere
    assert _login(app.test_client(), person.email).status_code == 401
    assert _login(app.test_client(), person.email, new_password).status_code == 201
    reused = client.post("/v1/password-reset/confirm", json={"token": token, "new_password": PASSWORD})
    assert reused.status_code == 400 and reused.json["error"]["code"] == "invalid_token"
    # The owner is told their password was reset.
    assert drain(sessions, settings) == ["sent"]
    assert "security notice" in smtp.to(person.email)[-1].subject

    # A second link, used after its 30 minutes, does nothing.
    client.post("/v1/password-reset", json={"email": person.email})
    drain(sessions, settings)
    late_token = smtp.to(person.email)[-1].token("/password-reset/confirm")
    clock.freeze(clock.now())
    clock.advance(timedelta(minutes=settings.password_reset_minutes, seconds=1))
    late = client.post("/v1/password-reset/confirm", json={"token": late_token, "new_password": PASSWORD})
    assert late.status_code == 400 and late.json["error"]["code"] == "invalid_token"
    assert _login(app.test_client(), person.email, new_password).status_code == 201


def test_a_reset_for_an_unknown_address_answers_the_same_and_sends_nothing(
    app, client, make_tenant, smtp, sessions, settings
):
    person = make_tenant(password=PASSWORD)
    known = client.post("/v1/password-reset", json={"email": person.email})
    unknown_email = _new_email()
    unknown = client.post("/v1/password-reset", json={"email": unknown_email})
    assert known.status_code == unknown.status_code == 202
    assert {**known.json, "email": "-"} == {**unknown.json, "email": "-"}
    assert known.headers.get("Set-Cookie") is None and unknown.headers.get("Set-Cookie") is None
    assert drain(sessions, settings) == ["sent"]
    assert smtp.to(unknown_email) == []
    assert len(smtp.to(person.email)) == 1


def test_password_reset_requests_are_throttled_per_address(app, client, make_tenant):
    person = make_tenant(password=PASSWORD)
    answers = [client.post("/v1/password-reset", json={"email": person.email}).status_code for _ in range(4)]
    assert answers == [202, 202, 202, 429]


def test_signing_up_with_a_taken_address_mails_its_owner_and_answers_as_a_new_signup(
    app, client, make_tenant, smtp, sessions, settings
):
    owner = make_tenant(password=PASSWORD)
    fresh = _new_email()
    new = _signup(client, fresh)
    taken = _signup(client, owner.email)
    assert new.status_code == taken.status_code == 202
    assert new.json == {"object": "signup", "email": fresh}
    assert taken.json == {"object": "signup", "email": owner.email}
    assert sorted(new.headers.keys()) == sorted(taken.headers.keys())
    assert drain(sessions, settings) == ["sent", "sent"]
    [notice] = smtp.to(owner.email)
    assert "tried to sign up" in notice.subject
    assert notice.link("/login") == "http://127.0.0.1:8000/login"
    assert notice.link("/password-reset") == "http://127.0.0.1:8000/password-reset"
    assert "verify-email" not in notice.text
    assert "Confirm your email address" in smtp.to(fresh)[0].subject
    # Nothing of the owner's changed: their password still logs in.
    assert _login(client, owner.email).status_code == 201


def test_a_new_api_key_is_told_to_the_accounts_owner(app, client, tenant, smtp, sessions, settings):
    made = client.post("/v1/keys", json={"name": "deploy bot"}, headers=tenant.headers)
    assert made.status_code == 201
    assert drain(sessions, settings) == ["sent"]
    [notice] = smtp.to(tenant.email)
    assert notice.subject == "faktry security notice: an API key was created"
    assert "'deploy bot'" in notice.text and made.json["prefix"] in notice.text
    assert "deploy bot" in notice.html
