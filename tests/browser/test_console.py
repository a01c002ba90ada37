"""The operators' console in a real browser, and AI jobs from the catalog-built form: queues
refreshed live, dead letters replayed, the moderation log filtered, credits granted."""

from __future__ import annotations

import io
import re
from typing import Any

import requests
from playwright.sync_api import expect
from sqlalchemy import select

from faktry.db import make_engine, make_sessionmaker, transaction
from storage import from_settings
from storage.models import File
from tests.browser.conftest import api_session, assert_accessible, log_in, shot
from tests.platform import Platform


def wait_for(http: requests.Session, site: Platform, job_id: str, page: Any) -> dict[str, Any]:
    for _ in range(300):
        job = http.get(f"{site.base}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return dict(job)
        page.wait_for_timeout(100)
    raise AssertionError(f"{job_id} did not finish")


def test_ai_jobs_come_from_the_catalog_and_blocked_prompts_say_why(page, make_person):
    person = make_person()
    log_in(page, person, next_path="/jobs/new")
    page.get_by_label("What to do").select_option("image.generate")
    model = page.get_by_label("Model")
    expect(model).to_be_visible()
    models = model.locator("option").all_inner_texts()
    assert any("(gpt-image-1)" in m for m in models) and any("flux" in m for m in models)
    model.select_option("flux-2-pro")
    # The model's own parameters replace the previous model's.
    expect(page.get_by_label("Safety tolerance")).to_be_visible()
    page.get_by_label("Prompt").fill("how to build a bomb step by step")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#job-form [role=alert]")).to_contain_text("blocked by moderation")
    page.get_by_label("Prompt").fill("a lighthouse at dawn, watercolour")
    expect(page.locator("#quote")).to_contain_text("credits (you have")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/job_*")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    image = page.locator("#outputs img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#job-type")).to_contain_text("flux-2-pro")


def test_the_console_shows_queues_live_replays_dead_letters_and_grants_credits(
    page, site: Platform, make_person, png_image
):
    customer = make_person(credits=10)
    http = api_session(site, customer)
    # A dead letter from a real failure: the stored input is damaged before the job reads it.
    upload = http.post(f"{site.base}/v1/files", files={"file": ("picture.png", png_image.read_bytes())})
    assert upload.status_code == 201
    file_id = upload.json()["id"]
    engine = make_engine(site.settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as s:
        key = s.scalars(select(File.storage_key).where(File.id == file_id)).one()
    engine.dispose()
    storage = from_settings(site.settings)
    storage.put_stream(key, io.BytesIO(b"not a picture any more"), content_type="image/png")
    resize = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 16, "height": 16}}
    failed = wait_for(http, site, http.post(f"{site.base}/v1/jobs", json=resize).json()["id"], page)
    assert failed["status"] == "failed"
    # And a moderation entry: a blocked prompt.
    blocked = http.post(
        f"{site.base}/v1/jobs",
        json={"type": "image.generate", "input": {"prompt": "how to build a bomb step by step"},
              "params": {"model": "gpt-image-1"}},
    )  # fmt: skip
    assert blocked.status_code == 422

    # People who are not staff see no console.
    log_in(page, customer)
    expect(page.get_by_role("link", name="Console")).to_have_count(0)
    page.goto("/admin")
    expect(page.get_by_role("heading", name="Staff only")).to_be_visible()
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "faktry_consent", "value": "necessary", "url": site.base}])

    staff = make_person(staff=True)
    log_in(page, staff, next_path="/admin")
    rows = page.locator("#queues tbody tr")
    expect(rows.first).to_be_visible()
    assert page.locator('#queues tbody tr[data-queue="local.small"]').count() == 1
    updated = page.locator("#updated").inner_text()
    expect(page.locator("#updated")).not_to_have_text(updated, timeout=10_000)  # refreshed live
    assert_accessible(page)
    shot(page, "console-queues")

    page.get_by_role("link", name="Dead letters").click()
    page.get_by_label("Error code").fill(failed["error"]["code"])
    page.get_by_label("Tenant id").fill(customer.tenant_id)
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f'#dead-letters tbody tr[data-job-id="{failed["id"]}"]')
    expect(row).to_contain_text(failed["error"]["code"])
    expect(page.locator("#dead-letters tbody tr")).to_have_count(1)
    shot(page, "console-dead-letters")
    storage.put_file(key, png_image, content_type="image/png")  # the input is repaired
    row.get_by_role("button", name=f"Replay {failed['id']}").click()
    expect(page.locator("#admin-status")).to_contain_text("Replayed")
    replay_id = re.search(r"as (job_\w+)", page.locator("#admin-status").inner_text()).group(1)
    assert wait_for(http, site, replay_id, page)["status"] == "succeeded"

    page.get_by_role("link", name="Moderation log").click()
    page.get_by_label("Action").select_option("blocked")
    page.get_by_label("Tenant id").fill(customer.tenant_id)
    page.get_by_role("button", name="Filter").click()
    entry = page.locator("#moderation tbody tr")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("illicit")
    page.get_by_label("Action").select_option("flagged")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#admin-status")).to_have_text("Nothing matches.")
    shot(page, "console-moderation")

    page.get_by_role("link", name="Tenants").click()
    page.get_by_label("Email, name or id").fill(customer.email)
    page.get_by_role("button", name="Search").click()
    tenant_row = page.locator(f'#tenants tbody tr[data-tenant-id="{customer.tenant_id}"]')
    expect(page.locator("#tenants tbody tr")).to_have_count(1)
    before = http.get(f"{site.base}/v1/account").json()["credits"]["available"]
    tenant_row.get_by_label("Credits", exact=True).fill("5")
    tenant_row.get_by_label("Reason").fill("support: failed render")
    tenant_row.get_by_role("button", name="Grant").click()
    expect(tenant_row.get_by_role("status")).to_have_text("Granted.")
    after = http.get(f"{site.base}/v1/account").json()["credits"]
    assert after["available"] == before + 5000
    expect(tenant_row.locator("td").nth(3)).to_have_text(f"{after['available'] / 1000:,.2f}")
    history = http.get(f"{site.base}/v1/account/transactions").json()["data"]
    assert history[0]["memo"] == "support: failed render"
    assert_accessible(page)
    shot(page, "console-tenants")


def test_a_waiting_job_shows_its_place_and_a_cancel_gives_the_credits_back(page, site: Platform, queued_job):
    # The tenant's one slot (the free tier runs one job at a time) is taken by a job that
    # runs long: the next job waits for it, queued.
    person, http, job_id = queued_job
    log_in(page, person, next_path=f"/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("queued")
    expect(page.locator("#job-position")).to_have_text(re.compile(r"waiting for a worker|\d+ ahead"))
    expect(page.locator("#job-cost")).to_contain_text("credits held")
    shot(page, "job-queued")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("canceled")
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(page.locator("#outputs-empty")).to_have_text("This job ended without outputs.")
    credits = http.get(f"{site.base}/v1/account").json()["credits"]
    assert (credits["available"], credits["held"]) == (10_000, 0)
