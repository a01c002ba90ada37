"""Accounts for people: sign-up (16 or older), log-in throttling, the profile."""

from __future__ import annotations


def signup(client, email="ada@example.com", password="correct horse battery", **extra):
    body = {"email": email, "password": password, "confirm_age_16": True, **extra}
    return client.post("/v1/signup", json=body)


def test_sign_up_needs_the_age_confirmation_and_a_real_password(client):
    r = signup(client, confirm_age_16=False)
    assert r.status_code == 422 and r.json["error"]["code"] == "age_confirmation_required"
    r = signup(client, password="short")
    assert r.status_code == 422 and r.json["error"]["field"] == "password"
    r = signup(client, password="x" * 73)
    assert r.status_code == 422 and r.json["error"]["field"] == "password"
    r = signup(client, email="not-an-email")
    assert r.status_code == 422 and r.json["error"]["field"] == "email"


def test_sign_up_creates_a_free_account_and_starts_a_session(client):
    r = signup(client)
    assert r.status_code == 201 and r.json["csrf_token"]
    account = client.get("/v1/account")
    assert account.status_code == 200
    assert account.json["tenant"]["tier"] == "free" and account.json["user"]["email"] == "ada@example.com"
    assert account.json["credits"]["available"] == 0
    again = signup(client, email="ADA@example.com")
    assert again.status_code == 422 and again.json["error"]["code"] == "email_taken"


def test_log_in_is_throttled_per_account(client):
    signup(client, email="grace@example.com")
    client.delete("/v1/session", headers={"X-CSRF-Token": client.get("/v1/session").json["csrf_token"]})
    codes = [
        client.post(
            "/v1/session", json={"email": "grace@example.com", "password": "wrong password"}
        ).status_code
        for _ in range(11)
    ]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    r = client.post("/v1/session", json={"email": "grace@example.com", "password": "correct horse battery"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_the_profile_holds_the_persons_details(client):
    token = signup(client).json["csrf_token"]
    assert client.get("/v1/profile").json == {
        "object": "profile", "email": "ada@example.com", "first_name": "", "last_name": "", "company": "",
        "industry": "", "website": "",
    }  # fmt: skip
    body = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical",
        "website": "https://ada.example",
    }
    assert client.patch("/v1/profile", json=body).status_code == 403  # cookie writes need the CSRF token
    r = client.patch("/v1/profile", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json["last_name"] == "Lovelace"
    bad = client.patch(
        "/v1/profile", json={"website": "javascript:alert(1)"}, headers={"X-CSRF-Token": token}
    )
    assert bad.status_code == 422 and bad.json["error"]["field"] == "website"
    extra = client.patch("/v1/profile", json={"birthday": "1815"}, headers={"X-CSRF-Token": token})
    assert extra.status_code == 422 and extra.json["error"]["field"] == "birthday"


def test_an_api_key_reads_its_users_profile(client, tenant):
    r = client.get("/v1/profile", headers=tenant.headers)
    assert r.status_code == 200 and r.json["email"] == tenant.email
