"""The data lifecycle in a browser: a person asks for an export archive on their profile, is
told when it is ready, downloads it and finds their data and their files in it, file by file;
then the retention sweeps, run with the clock moved past each limit, remove the archive (the
profile says it expired) and a plan's outputs (the library said when, and they are gone), and
carry the ledger forward after seven years with the balance shown unchanged."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import uuid
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines import retention
from quotas import ledger
from quotas.limits import DEFAULT_TIERS
from quotas.models import Tier
from storage import from_settings as storage_from_settings
from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot


@pytest.fixture
def site_db(site: Any) -> Any:
    engine = make_engine(site.settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def sweep(site: Any, sessions: Any, after: timedelta) -> retention.Swept:
    """The scheduler's retention pass, with the clock moved ``after`` into the future."""
    clock.freeze(clock.now() + after)
    try:
        storage = storage_from_settings(site.settings)
        return retention.sweep(sessions, storage, ledger_retention_days=site.settings.ledger_retention_days)
    finally:
        clock.reset()


def succeeded(site: Any, http: Any, body: dict[str, Any]) -> dict[str, Any]:
    job = http.post(f"{site.base}/v1/jobs", json=body).json()
    assert "id" in job, job
    deadline = time.monotonic() + 60
    while (done := http.get(f"{site.base}/v1/jobs/{job['id']}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline and done["status"] not in ("failed", "canceled"), done
        time.sleep(0.2)
    return dict(done)


def test_ask_for_an_archive_be_told_it_is_ready_download_it_and_see_it_expire(
    page, site, site_db, make_person, png_image, tmp_path
):
    person = make_person(credits=20)
    http = api_session(site, person)
    picture = png_image.read_bytes()
    upload = http.post(f"{site.base}/v1/files", files={"file": ("harbour.png", picture)}).json()
    resize = {
        "type": "image.resize",
        "input": {"file_id": upload["id"]},
        "params": {"width": 40, "height": 30},
    }
    job = succeeded(site, http, resize)
    brand = http.post(f"{site.base}/v1/brands", json={"name": "Harbour Co", "tagline": "Calm water"}).json()

    log_in(page, person, next_path="/profile")
    form = page.locator("#export-form")
    form.get_by_role("button", name="Build my archive").click()
    expect(page.locator("#export-state")).to_contain_text("being built")
    expect(page.locator("#export-state")).to_have_text("Your archive is ready to download.", timeout=60_000)
    item = page.locator("#export-list li[data-status=ready]")
    expect(item).to_have_count(1)
    assert_accessible(page)
    shot(page, "export-ready")
    with page.expect_download() as info:
        item.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename.startswith("faktry-export-")
    saved = tmp_path / "archive.zip"
    download.save_as(saved)

    with zipfile.ZipFile(saved) as archive:
        names = set(archive.namelist())
        assert {"README.txt", "account.json", "profile.json", "members.csv", "api_keys.csv", "jobs.json",
                "jobs.csv", "job_events.csv", "transactions.csv", "manifest.json"} <= names  # fmt: skip
        document = json.loads(archive.read("account.json"))
        assert document["tenant"]["id"] == person.tenant_id
        members = list(csv.DictReader(io.StringIO(archive.read("members.csv").decode())))
        assert [m["email"] for m in members] == [person.email]
        jobs = list(csv.DictReader(io.StringIO(archive.read("jobs.csv").decode())))
        assert [(j["id"], j["status"]) for j in jobs] == [(job["id"], "succeeded")]
        transactions = list(csv.DictReader(io.StringIO(archive.read("transactions.csv").decode())))
        assert {t["id"] for t in transactions} == {t["id"] for t in document["transactions"]}
        assert {t["kind"] for t in transactions} >= {"grant", "capture"}
        assert archive.read(f"brands/{brand['id']}.md").decode().startswith("# Harbour Co\n")
        assert json.loads(archive.read(f"brands/{brand['id']}.json"))["tagline"] == "Calm water"
        assert archive.read(f"media/{upload['id']}/harbour.png") == picture
        manifest = json.loads(archive.read("manifest.json"))
        assert len(manifest["files"]) == 2 and manifest["missing"] == []  # the upload and the resize
        for entry in manifest["files"]:
            data = archive.read(entry["name"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]

    # Past its expiry the scheduler removes it, and the profile says so.
    swept = sweep(site, site_db, timedelta(hours=site.settings.export_archive_hours, minutes=1))
    assert swept.archives_expired >= 1
    page.reload()
    expect(page.locator("#export-list li[data-status=expired]")).to_contain_text("expired and removed")
    expect(page.locator("#export-list").get_by_role("link", name="Download")).to_have_count(0)
    assert_fits(page)


def test_a_plans_output_retention_shows_in_the_library_and_the_sweep_removes_outputs(
    page, site, site_db, make_person, png_image
):
    tier = f"brief-{uuid.uuid4().hex[:6]}"
    with transaction(site_db) as session:
        session.add(Tier(name=tier, **{**DEFAULT_TIERS["creator"], "output_retention_days": 3}))
    person = make_person(credits=20, tier=tier)
    http = api_session(site, person)
    upload = http.post(f"{site.base}/v1/files", files={"file": ("dock.png", png_image.read_bytes())}).json()
    resize = {
        "type": "image.resize",
        "input": {"file_id": upload["id"]},
        "params": {"width": 40, "height": 30},
    }
    output = succeeded(site, http, resize)["outputs"][0]
    assert output["expires_at"]

    log_in(page, person, next_path="/library")
    cards = page.locator("#files > li")
    expect(cards).to_have_count(2)
    expect(page.locator(".expires")).to_have_count(1)  # the output, not the upload
    expect(page.locator(".expires")).to_contain_text("Removed on")
    shot(page, "library-output-retention")

    assert sweep(site, site_db, timedelta(days=2)).outputs_removed == 0  # not yet
    swept = sweep(site, site_db, timedelta(days=3, minutes=1))
    assert swept.outputs_removed == 1
    page.reload()
    expect(cards).to_have_count(1)
    expect(page.locator(".expires")).to_have_count(0)
    assert http.get(f"{site.base}/v1/files/{output['id']}").status_code == 404
    assert http.get(f"{site.base}/v1/files/{upload['id']}").status_code == 200


def test_after_seven_years_the_ledger_is_carried_forward_and_the_balance_shown_is_the_same(
    page, site, site_db, make_person, png_image
):
    person = make_person(credits=20)
    http = api_session(site, person)
    upload = http.post(f"{site.base}/v1/files", files={"file": ("quay.png", png_image.read_bytes())}).json()
    resize = {
        "type": "image.resize",
        "input": {"file_id": upload["id"]},
        "params": {"width": 40, "height": 30},
    }
    succeeded(site, http, resize)
    before = http.get(f"{site.base}/v1/account/transactions?limit=100").json()["data"]
    assert len(before) >= 3 and "carried" not in {t["kind"] for t in before}  # grant, hold, capture

    log_in(page, person, next_path="/credits")
    shown = page.locator("#balance-amount").inner_text()
    credits = http.get(f"{site.base}/v1/account").json()["credits"]

    swept = sweep(site, site_db, timedelta(days=site.settings.ledger_retention_days + 1))
    assert swept.ledger_entries_deleted >= len(before)
    page.reload()
    expect(page.locator("#balance-amount")).to_have_text(shown)
    after = http.get(f"{site.base}/v1/account/transactions?limit=100").json()["data"]
    assert [t["kind"] for t in after] == ["carried"]
    assert http.get(f"{site.base}/v1/account").json()["credits"] == credits
    with transaction(site_db) as session:
        assert ledger.check(session, person.tenant_id) == []
