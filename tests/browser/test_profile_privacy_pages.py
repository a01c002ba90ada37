"""The rights the privacy policy names, on the profile page in a browser: the optional
birthday and location are kept and shown again; restricting processing stops new jobs (the
job form says why, nothing is charged) while the data stays readable and exportable, and
lifting it lets jobs run again; objecting to analytics reopens the consent choice, whose
refusal is remembered."""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot

PROMPT = "a quiet harbour at night"


def test_profile_fields_restriction_of_processing_and_objection_to_analytics(page, site, make_person):
    person = make_person(credits=20)
    http = api_session(site, person)
    log_in(page, person, next_path="/profile")

    # Birthday and location: optional, saved, shown again.
    page.get_by_label("Location").fill("Lisbon")
    page.get_by_label("Birthday").fill("1990-04-12")
    page.locator("#profile-form").get_by_role("button", name="Save").click()
    expect(page.locator("#profile-form [role=status]")).to_have_text("Saved.")
    page.reload()
    expect(page.get_by_label("Location")).to_have_value("Lisbon")
    expect(page.get_by_label("Birthday")).to_have_value("1990-04-12")
    assert http.get(f"{site.base}/v1/profile").json()["birthday"] == "1990-04-12"

    # Restrict processing: the job form refuses, saying why; nothing is held.
    balance = http.get(f"{site.base}/v1/account").json()["credits"]
    page.get_by_role("button", name="Restrict processing").click()
    expect(page.locator("#restriction-state")).to_contain_text("Processing is restricted since")
    expect(page.get_by_role("button", name="Lift the restriction")).to_be_visible()
    assert_accessible(page)
    shot(page, "profile-restricted")
    form_url = f"/jobs/new?type=image.generate&model=local-image&prompt={quote(PROMPT)}"
    page.goto(form_url)
    page.locator("#job-form").get_by_role("button", name="Submit job").click()
    expect(page.locator("#job-form [role=alert]")).to_contain_text("processing is restricted")
    assert http.get(f"{site.base}/v1/account").json()["credits"] == balance
    assert http.get(f"{site.base}/v1/jobs").json()["data"] == []
    # Everything stays readable and exportable.
    assert http.get(f"{site.base}/v1/account/export").json()["tenant"]["restricted"] is True
    assert http.post(f"{site.base}/v1/account/exports").status_code == 202

    # Lifting it: the same job goes through.
    page.goto("/profile")
    page.get_by_role("button", name="Lift the restriction").click()
    expect(page.locator("#restriction-state")).to_have_text("Processing is not restricted.")
    page.goto(form_url)
    page.locator("#job-form").get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/job_*")
    assert len(http.get(f"{site.base}/v1/jobs").json()["data"]) == 1

    # Objection to analytics: the profile reopens the consent choice; refusing is remembered.
    page.goto("/profile")
    expect(page.locator("#consent-state")).to_have_text("You have refused analytics cookies.")
    page.get_by_role("button", name="Change analytics consent").click()
    expect(page.locator("#consent")).to_be_visible()
    page.get_by_role("button", name="Accept analytics").click()
    page.reload()
    expect(page.locator("#consent-state")).to_have_text("You have allowed analytics cookies.")
    page.get_by_role("button", name="Change analytics consent").click()
    page.get_by_role("button", name="Necessary cookies only").click()
    page.reload()
    expect(page.locator("#consent-state")).to_have_text("You have refused analytics cookies.")
    assert not [c for c in page.context.cookies() if c["name"].startswith("_fa_")]
    assert_fits(page)
