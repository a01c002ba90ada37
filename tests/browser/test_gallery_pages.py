"""The prompt gallery in a browser: a person publishes a generated image from its job page,
a visitor who is not logged in finds it in the gallery and on its own page (the picture
loads from its public URL), "Use this prompt" leads a logged-in person to a pre-filled job
form, the person unpublishes it, and staff remove another one with a reason."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot

PROMPT = "a lighthouse at dawn, watercolour"


def _generated(site: Any, http: Any) -> str:
    body = {"type": "image.generate", "input": {"prompt": PROMPT}, "params": {"model": "local-image"}}
    job = http.post(f"{site.base}/v1/jobs", json=body).json()
    assert "id" in job, job
    deadline = time.monotonic() + 60
    while (done := http.get(f"{site.base}/v1/jobs/{job['id']}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline and done["status"] not in ("failed", "canceled"), done
        time.sleep(0.2)
    return str(job["id"])


def test_publish_browse_logged_out_use_the_prompt_and_unpublish(page, chromium, site, make_person):
    person = make_person(credits=20)
    http = api_session(site, person)
    job_id = _generated(site, http)

    # Publish from the job page.
    log_in(page, person, next_path=f"/jobs/{job_id}")
    form = page.locator("#publish-form")
    expect(page.locator("#publish")).to_be_visible()
    form.get_by_label("Category").select_option("nature")
    form.get_by_label("Display name").fill("Sam from the coast")
    form.get_by_role("button", name="Publish to gallery").click()
    expect(page.locator("#published-link")).to_be_visible()
    assert_accessible(page)

    # A visitor with no session finds it, and its picture loads from the public URL.
    visitor = chromium.new_context(base_url=site.base, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        stranger = visitor.new_page()
        stranger.goto("/gallery")
        tile = stranger.locator("#gallery li").filter(has_text="Sam from the coast")
        expect(tile).to_have_count(1)
        assert_fits(stranger)
        tile.get_by_role("link").first.click()
        stranger.wait_for_url("**/gallery/gal_*")
        expect(stranger.locator("#entry-prompt")).to_have_text(PROMPT)
        expect(stranger.locator("#entry-by")).to_have_text("Sam from the coast")
        image = stranger.locator("#gallery-entry img")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        assert_accessible(stranger)
        assert_fits(stranger)
        shot(stranger, "gallery-entry-phone")
        entry_url = stranger.url
        # Not logged in: using the prompt asks to log in first.
        expect(stranger.locator("#use-prompt")).to_contain_text("Log in")
    finally:
        visitor.close()

    # Logged in, "Use this prompt" opens the job form with the prompt filled in.
    page.goto(entry_url)
    page.locator("#use-prompt").click()
    page.wait_for_url("**/jobs/new?*")
    expect(page.get_by_label("What to do")).to_have_value("image.generate")
    expect(page.get_by_label("Prompt")).to_have_value(PROMPT)

    # The person unpublishes it from the entry's page; it is gone for everyone.
    page.goto(entry_url)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#unpublish-form").get_by_role("button", name="Unpublish").click()
    page.wait_for_url("**/gallery?unpublished=1")
    expect(page.locator("#gallery-unpublished")).to_be_visible()
    entry_id = entry_url.rsplit("/", 1)[1]
    assert http.get(f"{site.base}/v1/gallery/{entry_id}").status_code == 404
    page.goto(entry_url)
    expect(page.locator("h1")).not_to_have_text(PROMPT)
    page.goto("/gallery")
    expect(page.locator("#gallery li").filter(has_text="Sam from the coast")).to_have_count(0)


def test_staff_remove_an_entry_from_its_page_with_the_reason_in_the_moderation_log(
    page, chromium, site, make_person
):
    person = make_person(credits=20)
    http = api_session(site, person)
    job_id = _generated(site, http)
    body = {"job_id": job_id, "category": "art", "display_name": "Rule Breaker"}
    entry = http.post(f"{site.base}/v1/gallery", json=body).json()
    assert "id" in entry, entry
    reason = f"copyright claim {entry['id'][-6:]}"

    # Someone else sees no removal form and no unpublish button.
    log_in(page, make_person(credits=0), next_path=f"/gallery/{entry['id']}")
    expect(page.locator("#entry-by")).to_have_text("Rule Breaker")
    expect(page.locator("#remove-form")).to_have_count(0)
    expect(page.locator("#unpublish-form")).to_have_count(0)
    page.context.clear_cookies()

    log_in(page, make_person(staff=True, credits=0), next_path=f"/gallery/{entry['id']}")
    form = page.locator("#remove-form")
    form.get_by_role("button", name="Remove from the gallery").click()  # no reason: refused
    expect(page.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Reason").fill(reason)
    form.get_by_role("button", name="Remove from the gallery").click()
    expect(form.locator("[role=alert]")).to_contain_text("Removed")
    assert_accessible(page)
    shot(page, "gallery-removed-by-staff")

    # Hidden from everyone at once; the reason is in the console's moderation log.
    assert http.get(f"{site.base}/v1/gallery/{entry['id']}").status_code == 404
    page.goto("/gallery")
    expect(page.locator("#gallery li").filter(has_text="Rule Breaker")).to_have_count(0)
    page.goto("/admin/moderation")
    page.get_by_label("Action").select_option("removed")
    page.locator("#moderation-filters").get_by_role("button", name="Filter").click()
    row = page.locator("#moderation tr").filter(has_text=reason)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("removed")
    expect(row).to_contain_text(PROMPT)
