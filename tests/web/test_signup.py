"""Accounts for people: sign-up (16 or older), log-in throttling, the profile.

Whether a sign-up's email was taken is not told (tests/web/test_enumeration.py): a sign-up
starts no session, and the person logs in next."""

from __future__ import annotations

PASSWORD = "correct horse battery"


def signup(client, email="ada@example.com", password=PASSWORD, **extra):
    body = {"email": email, "password": password, "confirm_age_16": True, **extra}
    return client.post("/v1/signup", json=body)


def sign_up_and_log_in(client, email="ada@example.com", password=PASSWORD) -> str:
    """Sign up, then log in as the sign-up page does; returns the CSRF token."""
    assert signup(client, email=email, password=password).status_code == 202
    login = client.post("/v1/session", json={"email": email, "password": password})
    assert login.status_code == 201, login.json
    return str(login.json["csrf_token"])


def test_sign_up_needs_the_age_confirmation_and_a_real_password(client):
    r = signup(client, confirm_age_16=False)
    assert r.status_code == 422 and r.json["error"]["code"] == "age_confirmation_required"
    r = signup(client, password="short")
    assert r.status_code == 422 and r.json["error"]["field"] == "password"
    r = signup(client, password="x" * 73)
    assert r.status_code == 422 and r.json["error"]["field"] == "password"
    r = signup(client, email="not-an-email")
    assert r.status_code == 422 and r.json["error"]["field"] == "email"
    r = signup(client, referrer="a friend")
    assert r.status_code == 422 and r.json["error"]["code"] == "unknown_field"
    r = client.post("/v1/signup", json=["ada@example.com"])
    assert r.status_code == 422 and r.json["error"]["field"] == "body"


def test_sign_up_creates_a_free_account_to_log_in_to(client):
    r = signup(client, email=" Ada@Example.com ")
    assert r.status_code == 202 and r.json == {"object": "signup", "email": "ada@example.com"}
    assert "Set-Cookie" not in r.headers  # no session: the person logs in next
    assert client.get("/v1/account").status_code == 401
    login = client.post("/v1/session", json={"email": "ada@example.com", "password": PASSWORD})
    assert login.status_code == 201 and login.json["csrf_token"]
    account = client.get("/v1/account")
    assert account.status_code == 200
    assert account.json["tenant"]["tier"] == "free" and account.json["user"]["email"] == "ada@example.com"
    assert account.json["credits"]["available"] == 0


def test_log_in_is_throttled_per_account(client):
    signup(client, email="grace@example.com")
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
    token = sign_up_and_log_in(client)
    # A new sign-up has not followed its verification link yet.
    assert client.get("/v1/profile").json == {
        "object": "profile", "email": "ada@example.com", "first_name": "", "last_name": "", "company": "",
        "industry": "", "website": "", "location": "", "birthday": None, "email_verified": False,
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
    extra = client.patch("/v1/profile", json={"nickname": "Ada"}, headers={"X-CSRF-Token": token})
    assert extra.status_code == 422 and extra.json["error"]["field"] == "nickname"
    assert extra.json["error"]["code"] == "unknown_field"
    bad_day = client.patch("/v1/profile", json={"birthday": "1815"}, headers={"X-CSRF-Token": token})
    assert bad_day.status_code == 422 and bad_day.json["error"]["field"] == "birthday"


def test_an_api_key_reads_its_users_profile(client, tenant):
    r = client.get("/v1/profile", headers=tenant.headers)
    assert r.status_code == 200 and r.json["email"] == tenant.email
