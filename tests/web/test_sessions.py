"""Web sessions are kept in the database: the cookie names a session row, so logging out
(here or everywhere), a password change and an account deletion end a session in every copy
of its cookie; sessions expire when idle and after their lifetime; cookies are Secure but on
plain http over loopback."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from faktry import clock
from faktry.config import Settings
from faktry.tenancy import UserSession
from tests import services as svc
from web import create_app
from workers.broker import BrokerSender

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a much better passphrase"


def log_in(client: Any, person: Any, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/v1/session", json={"email": person.email, "password": password})
    assert r.status_code == 201, r.json
    return {"X-CSRF-Token": r.json["csrf_token"]}


def cookie_of(client: Any) -> str:
    cookie = client.get_cookie("faktry_session")
    assert cookie is not None
    return str(cookie.value)


def copy_of(app: Any, cookie: str) -> Any:
    """Another browser holding a copy of ``cookie``."""
    other = app.test_client()
    other.set_cookie("faktry_session", cookie)
    return other


def sessions_of(settings: Any, tenant_id: str) -> list[UserSession]:
    with svc.db_session(settings.resolved_database_url) as s:
        return list(s.scalars(select(UserSession).where(UserSession.tenant_id == tenant_id)))


def test_the_cookie_carries_only_a_session_token_and_the_csrf_token(app, client, make_tenant, settings):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person, PASSWORD)
    content = app.session_interface.get_signing_serializer(app).loads(cookie_of(client))
    assert set(content) == {"sid", "csrf"} and content["csrf"] == csrf["X-CSRF-Token"]
    [row] = sessions_of(settings, person.id)
    # Only the token's SHA-256 is stored: the table cannot be turned back into cookies.
    assert row.token_hash == hashlib.sha256(content["sid"].encode()).hexdigest()
    assert content["sid"] not in (row.id, row.token_hash) and len(content["sid"]) >= 43
    assert row.user_id == person.user_id and row.address == "127.0.0.1"


def test_log_out_ends_the_session_in_every_copy_of_the_cookie(app, client, make_tenant, settings):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    cookie = cookie_of(client)
    assert copy_of(app, cookie).get("/v1/account").status_code == 200
    assert client.delete("/v1/session", headers=csrf).status_code == 204
    for browser in (client, copy_of(app, cookie)):
        r = browser.get("/v1/account")
        assert r.status_code == 401 and r.json["error"]["code"] in ("session_expired", "unauthenticated")
    assert copy_of(app, cookie).get("/jobs").status_code == 302  # the pages send it to log in
    assert sessions_of(settings, person.id) == []


def test_log_out_everywhere_ends_every_session_of_the_person_and_no_one_elses(app, make_tenant, settings):
    person, someone = make_tenant(password=PASSWORD), make_tenant(password=PASSWORD)
    here, there, elsewhere = app.test_client(), app.test_client(), app.test_client()
    csrf = log_in(here, person)
    log_in(there, person)
    log_in(elsewhere, someone)
    stolen = copy_of(app, cookie_of(there))
    assert here.delete("/v1/sessions").status_code == 403  # a write: the CSRF token is needed
    assert here.delete("/v1/sessions", headers=csrf).status_code == 204
    for browser in (here, there, stolen):
        assert browser.get("/v1/account").status_code == 401
    assert elsewhere.get("/v1/account").status_code == 200
    assert sessions_of(settings, person.id) == [] and len(sessions_of(settings, someone.id)) == 1


def test_an_api_key_can_log_its_person_out_everywhere_and_keeps_working(app, make_tenant):
    person = make_tenant(password=PASSWORD)
    browser = app.test_client()
    log_in(browser, person)
    api = app.test_client()
    assert api.delete("/v1/sessions", headers=person.headers).status_code == 204
    assert browser.get("/v1/account").status_code == 401
    assert api.get("/v1/account", headers=person.headers).status_code == 200


def test_a_password_change_ends_the_other_sessions_and_renews_this_one(app, make_tenant, settings):
    person = make_tenant(password=PASSWORD)
    here, there = app.test_client(), app.test_client()
    csrf = log_in(here, person)
    log_in(there, person)
    before = cookie_of(here)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}

    wrong = here.post(
        "/v1/profile/password", json={**change, "current_password": "not it at all"}, headers=csrf
    )
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "password_required"
    short = here.post("/v1/profile/password", json={**change, "new_password": "short"}, headers=csrf)
    assert short.status_code == 422 and short.json["error"]["field"] == "new_password"
    extra = here.post("/v1/profile/password", json={**change, "confirm": NEW_PASSWORD}, headers=csrf)
    assert extra.status_code == 422 and extra.json["error"]["code"] == "unknown_field"
    by_key = app.test_client().post("/v1/profile/password", json=change, headers=person.headers)
    assert by_key.status_code == 403 and by_key.json["error"]["code"] == "session_required"
    assert there.get("/v1/account").status_code == 200  # nothing changed yet

    r = here.post("/v1/profile/password", json=change, headers=csrf)
    assert r.status_code == 200 and r.json["object"] == "session"
    assert r.json["csrf_token"] != csrf["X-CSRF-Token"]
    assert here.get("/v1/account").status_code == 200  # this browser stays logged in, anew
    assert cookie_of(here) != before
    for browser in (there, copy_of(app, before)):
        assert browser.get("/v1/account").status_code == 401
    assert len(sessions_of(settings, person.id)) == 1
    assert (
        app.test_client().post("/v1/session", json={"email": person.email, "password": PASSWORD}).status_code
        == 401
    )
    log_in(app.test_client(), person, NEW_PASSWORD)


def test_account_deletion_removes_the_persons_sessions(app, client, make_tenant, settings):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    other = app.test_client()
    log_in(other, person)
    assert client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf).status_code == 204
    assert other.get("/v1/account").status_code == 401
    assert sessions_of(settings, person.id) == []


@pytest.fixture
def short_sessions(settings: Settings, runtime: Any) -> Any:
    """An app whose sessions end after an hour idle or three hours in all."""
    app = create_app(
        settings.replace(session_idle_seconds=3600, session_max_seconds=3 * 3600),
        sender=BrokerSender(runtime.broker),
    )
    app.testing = True
    return app


def test_a_session_ends_after_its_idle_time(short_sessions, make_tenant, settings):
    clock.freeze(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    person = make_tenant(password=PASSWORD)
    browser = short_sessions.test_client()
    log_in(browser, person)
    clock.advance(timedelta(minutes=59))
    assert browser.get("/v1/account").status_code == 200  # and it was seen now
    clock.advance(timedelta(minutes=59))
    assert browser.get("/v1/account").status_code == 200
    clock.advance(timedelta(minutes=60))
    r = browser.get("/v1/account")
    assert r.status_code == 401 and r.json["error"]["code"] == "session_expired"
    assert sessions_of(settings, person.id) == []  # an expired session is deleted when seen


def test_a_session_ends_after_its_lifetime_however_busy(short_sessions, make_tenant, settings):
    clock.freeze(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    person = make_tenant(password=PASSWORD)
    browser = short_sessions.test_client()
    log_in(browser, person)
    for _ in range(5):
        clock.advance(timedelta(minutes=35))
        assert browser.get("/v1/session").status_code == 200
        assert browser.get("/jobs").status_code == 200  # pages keep it alive too
    clock.advance(timedelta(minutes=10))  # three hours and five minutes after log-in
    assert browser.get("/v1/session").status_code == 401
    assert browser.get("/jobs").status_code == 302


def test_a_log_in_removes_every_expired_session(short_sessions, make_tenant, settings):
    clock.freeze(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    left, later = make_tenant(password=PASSWORD), make_tenant(password=PASSWORD)
    log_in(short_sessions.test_client(), left)  # never comes back
    clock.advance(timedelta(hours=2))
    log_in(short_sessions.test_client(), later)
    assert sessions_of(settings, left.id) == [] and len(sessions_of(settings, later.id)) == 1


def test_checking_a_session_is_one_read_and_its_last_seen_stamp_at_most_one_write_a_minute(
    app, client, make_tenant
):
    person = make_tenant(password=PASSWORD)
    log_in(client, person)
    statements: list[str] = []
    engine = app.extensions["faktry"].sessions.kw["bind"]

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "user_sessions" in statement:
            statements.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert client.get("/v1/session").status_code == 200
        assert statements == ["SELECT"] * 3
        statements.clear()
        clock.advance(timedelta(minutes=2))
        assert client.get("/v1/session").status_code == 200
        assert client.get("/v1/session").status_code == 200
        assert statements == ["SELECT", "UPDATE", "SELECT"]
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_cookie_from_before_sessions_were_kept_is_refused(app, client, make_tenant):
    person = make_tenant(password=PASSWORD)
    old = app.session_interface.get_signing_serializer(app).dumps(
        {"user_id": person.user_id, "tenant_id": person.id, "csrf": "x"}
    )
    client.set_cookie("faktry_session", old)
    r = client.get("/v1/account")
    assert r.status_code == 401 and r.json["error"]["code"] == "session_expired"


def test_the_profile_page_offers_a_password_change_and_ending_all_sessions(client, make_tenant):
    log_in(client, make_tenant(password=PASSWORD))
    page = client.get("/profile").get_data(as_text=True)
    assert 'id="password-form"' in page and 'id="sessions-form"' in page
    assert "End all sessions" in page and "Change password" in page


@pytest.mark.parametrize(
    ("base_url", "forced", "secure"),
    [
        ("", False, False),  # http://127.0.0.1:8000
        ("http://localhost:8000", False, False),
        ("http://[::1]:8000", False, False),
        ("http://127.0.0.1:8000", True, True),
        ("https://faktry.example", False, True),
        ("http://faktry.example", False, True),
        ("http://192.168.1.20:8000", False, True),
    ],
)
def test_cookies_are_secure_except_over_plain_http_on_loopback(base_url, forced, secure):
    assert Settings(base_url=base_url, secure_cookies=forced).cookies_secure is secure


def test_the_session_cookie_is_secure_by_default_behind_a_public_url(settings, runtime, make_tenant):
    person = make_tenant(password=PASSWORD)
    app = create_app(settings.replace(base_url="http://faktry.example"), sender=BrokerSender(runtime.broker))
    r = app.test_client().post("/v1/session", json={"email": person.email, "password": PASSWORD})
    header = r.headers["Set-Cookie"]
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
