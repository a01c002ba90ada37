"""Deleting an account as a person meets it: a wrong password is refused with a code of its
own, on the password field; once deleted, a page says what went and what stays."""

from __future__ import annotations

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


def log_in(client, person):
    r = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    assert r.status_code == 201
    return {"X-CSRF-Token": r.json["csrf_token"]}


def test_a_wrong_password_is_refused_as_wrong_on_the_password_field_and_deletes_nothing(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    r = client.delete("/v1/account", json={"password": "not my password"}, headers=csrf)
    assert r.status_code == 403
    assert r.json["error"]["code"] == "wrong_password"
    assert r.json["error"]["field"] == "password"
    assert "not your password" in r.json["error"]["message"]
    assert client.get("/v1/account").status_code == 200  # still there, still logged in


def test_a_missing_password_is_asked_for_on_the_password_field(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    for body in ({}, {"password": ""}, {"password": 5}):
        r = client.delete("/v1/account", json=body, headers=csrf)
        assert r.status_code == 403, body
        assert (r.json["error"]["code"], r.json["error"]["field"]) == ("password_required", "password")


def test_after_deletion_the_page_says_what_was_deleted_and_what_is_kept(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    assert client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf).status_code == 204
    r = client.get("/account/deleted", headers=HTML)
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "<h1>Your account is deleted</h1>" in page
    deleted, kept = page.split('id="kept-h"')
    for what in (
        "profile",
        "files",
        "jobs",
        "API keys",
        "workflows",
        "brand guidelines",
        "projects",
        "forfeited",
    ):
        assert what in deleted.split('id="deleted-h"')[1], what
    for what in (
        "Transaction records",
        "seven years",
        "Stripe customer id",
        "Moderation log",
        "twelve months",
    ):
        assert what in kept, what
    assert 'href="/privacy#section-13"' in kept
    assert 'id="logout"' not in page and 'id="balance"' not in page  # nobody is logged in any more


def test_the_profile_page_ties_the_deletion_error_to_the_password_field(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    log_in(client, person)
    page = client.get("/profile", headers=HTML).get_data(as_text=True)
    assert 'aria-describedby="delete-password-error"' in page
    assert '<p role="alert" class="message" id="delete-password-error" hidden></p>' in page
