"""The profile fields the privacy policy names: birthday (a date, never in the future) and
location (short text), both optional; in the export; gone with the account. And the profile
offers what the person may do about their data: restrict processing, object to analytics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import User

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


def log_in(client, person):
    r = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    assert r.status_code == 201, r.json
    return {"X-CSRF-Token": r.json["csrf_token"]}


def test_birthday_and_location_are_optional_and_can_be_set_and_cleared(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    profile = client.get("/v1/profile").json
    assert profile["birthday"] is None and profile["location"] == ""
    r = client.patch("/v1/profile", json={"birthday": "1990-04-30", "location": " Vienna "}, headers=csrf)
    assert r.status_code == 200, r.json
    assert (r.json["birthday"], r.json["location"]) == ("1990-04-30", "Vienna")
    assert client.get("/v1/profile", headers=person.headers).json["birthday"] == "1990-04-30"
    # Other fields are left as they are; null or "" clears the birthday.
    r = client.patch("/v1/profile", json={"company": "Analytical"}, headers=csrf)
    assert r.json["birthday"] == "1990-04-30" and r.json["location"] == "Vienna"
    assert client.patch("/v1/profile", json={"birthday": None}, headers=csrf).json["birthday"] is None
    client.patch("/v1/profile", json={"birthday": "2001-01-01"}, headers=csrf)
    cleared = client.patch("/v1/profile", json={"birthday": "", "location": ""}, headers=csrf).json
    assert cleared["birthday"] is None and cleared["location"] == ""


@pytest.mark.parametrize(
    "value",
    ["1815", "1899-12-31", "2020-02-30", "30.04.1990", "1990-4-30", 19900430, True, ["1990-04-30"]],
)
def test_a_birthday_that_is_not_a_date_since_1900_is_refused(client, make_tenant, value):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    r = client.patch("/v1/profile", json={"birthday": value}, headers=csrf)
    assert r.status_code == 422 and r.json["error"]["field"] == "birthday"
    assert client.get("/v1/profile").json["birthday"] is None


def test_a_birthday_in_the_future_is_refused_but_today_anywhere_on_earth_is_taken(client, make_tenant):
    clock.freeze(datetime(2030, 6, 15, 11, 0, tzinfo=UTC))  # 15 June everywhere, 16 June at UTC+14
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    assert client.patch("/v1/profile", json={"birthday": "2030-06-16"}, headers=csrf).status_code == 200
    r = client.patch("/v1/profile", json={"birthday": "2030-06-17"}, headers=csrf)
    assert r.status_code == 422 and r.json["error"]["field"] == "birthday"
    assert client.get("/v1/profile").json["birthday"] == "2030-06-16"


@pytest.mark.parametrize("value", ["x" * 101, "Vienna\n", 7, None])
def test_a_location_must_be_short_printable_text(client, make_tenant, value):
    person = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    r = client.patch("/v1/profile", json={"location": value}, headers=csrf)
    assert r.status_code == 422 and r.json["error"]["field"] == "location"


def test_the_export_holds_birthday_and_location_and_deletion_removes_them(client, make_tenant, settings):
    person = make_tenant(password=PASSWORD)
    other = make_tenant(password=PASSWORD)
    csrf = log_in(client, person)
    body = {"birthday": "1985-12-10", "location": "Graz-Unique-Place"}
    assert client.patch("/v1/profile", json=body, headers=csrf).status_code == 200
    exported = client.get("/v1/account/export").json
    assert [(u["birthday"], u["location"]) for u in exported["users"]] == [
        ("1985-12-10", "Graz-Unique-Place")
    ]

    assert client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf).status_code == 204
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            assert s.scalars(select(User).where(User.tenant_id == person.id)).all() == []
            kept = s.execute(
                select(User.birthday, User.location).where(User.location == body["location"])
            ).all()
            assert kept == []
            assert s.scalar(select(User.id).where(User.tenant_id == other.id)) is not None
    finally:
        engine.dispose()


def test_the_profile_page_edits_birthday_and_location_and_offers_restriction(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    log_in(client, person)
    page = client.get("/profile", headers=HTML).get_data(as_text=True)
    assert 'id="birthday" name="birthday" type="date"' in page and 'id="location" name="location"' in page
    assert 'id="restriction-form"' in page and 'id="restriction-toggle"' in page
    # No analytics configured: nothing to object to, and the page says so.
    assert 'id="profile-consent-open"' not in page and "loads no analytics" in page


def test_the_profile_offers_to_withdraw_analytics_consent_through_the_banner(settings, runtime, make_tenant):
    from web import create_app
    from workers.broker import BrokerSender

    snippets = '[{"name": "Vendor", "src": "https://analytics.example/a.js"}]'
    app = create_app(settings.replace(analytics_snippets=snippets), sender=BrokerSender(runtime.broker))
    try:
        browser = app.test_client()
        person = make_tenant(password=PASSWORD)
        log_in(browser, person)
        browser.set_cookie("faktry_consent", "analytics")
        page = browser.get("/profile", headers=HTML).get_data(as_text=True)
    finally:
        app.extensions["faktry"].sessions.kw["bind"].dispose()
    objection = page[page.index('id="objection"') :]
    # The profile's button reopens the one consent choice (the banner), which is on the page.
    assert 'id="profile-consent-open"' in objection and 'aria-controls="consent"' in objection
    assert '<a href="/privacy#section-8">' in objection
    assert 'id="consent"' in page and 'id="consent-open"' in page and 'id="consent-decline"' in page
    script = app.static_folder + "/pages/profile.js"
    with open(script) as f:
        code = f.read()
    assert '$("#consent-open")?.click()' in code
