"""Web users in a real browser: sign up, upload, submit, watch a job to its preview, keys,
credits, profile, cookie consent; readable on a phone."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, assert_accessible, assert_fits, log_in, shot
from tests.platform import Platform


def _drop(page: Any, path: Path, mime: str) -> None:
    """Drag and drop a file onto the drop zone, as a person would from their desktop."""
    data = list(path.read_bytes())
    page.evaluate(
        """([name, mime, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [path.name, mime, data],
    )


def test_sign_up_upload_submit_and_watch_a_job_to_its_preview(page, site: Platform, png_image, clip_small):
    page.goto("/signup")
    shot(page, "signup")
    email = f"new-{id(page)}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    # Under-16s are not accepted: the confirmation is required, and nothing was created.
    expect(page.get_by_role("alert")).to_contain_text("16 or older")
    expect(page.get_by_label("I am 16 years of age or older")).to_be_focused()
    page.get_by_label("I am 16 years of age or older").check()
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/library")

    # Upload: one file dropped, one chosen; each shows its progress bar filling up.
    expect(page.locator("#storage-text")).to_contain_text("used on the free tier")
    _drop(page, png_image, "image/png")
    upload = page.locator("#uploads li").first
    expect(upload).to_contain_text("uploaded")
    assert upload.locator("progress").evaluate("el => el.value") == 1
    page.locator("#file-input").set_input_files(str(clip_small))
    expect(page.locator("#uploads li").nth(1)).to_contain_text("uploaded")
    tiles = page.locator("#files li")
    expect(tiles).to_have_count(2)
    expect(page.locator("#storage-text")).not_to_contain_text("0 B of")
    # Filters: by type.
    page.get_by_label("Type").select_option("video")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_have_attribute("data-kind", "video")
    page.get_by_label("Type").select_option("")
    expect(tiles).to_have_count(2)
    page.get_by_label("Origin").select_option("output")
    expect(page.locator("#files-status")).to_have_text("No files match.")
    page.get_by_label("Origin").select_option("")
    page.get_by_label("Size").select_option("small")
    expect(tiles).to_have_count(2)
    page.get_by_label("Size").select_option("large")
    expect(tiles).to_have_count(0)
    page.get_by_label("Size").select_option("")
    expect(tiles).to_have_count(2)
    assert_accessible(page)
    shot(page, "library")

    # Submit: the form is built from the job type's schema; the price shows before submitting.
    image_id = page.locator('#files li[data-kind="image"]').get_attribute("data-file-id")
    page.locator('#files li[data-kind="image"]').get_by_role("link", name="Use in a job").click()
    page.wait_for_url("**/jobs/new?file=*")
    expect(page.get_by_label("What to do")).to_have_value("image.resize")
    page.get_by_label("What to do").select_option("image.resize")
    expect(page.get_by_label("File")).to_have_value(image_id or "")
    page.get_by_label("Width").fill("32")
    page.get_by_label("Height").fill("24")
    page.get_by_label("Format").select_option("webp")
    expect(page.locator("#quote")).to_contain_text("credits (you have")
    shot(page, "job-form")
    assert_accessible(page)
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/job_*")

    # Live: the status changes without a reload, up to succeeded, then the preview.
    page.evaluate("window.loadedOnce = true")
    status = page.locator("#job-status")
    expect(status).to_have_text("succeeded", timeout=60_000)
    assert page.evaluate("window.loadedOnce") is True  # the same page, never reloaded
    assert page.locator("#job-progress").evaluate("el => el.value") == 1
    image = page.locator("#outputs img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 32
    download = page.locator("#outputs").get_by_role("link", name="Download")
    assert requests.get(site.base + download.get_attribute("href"), timeout=10).status_code == 401
    with page.expect_download() as info:
        download.click()
    assert info.value.suggested_filename.endswith(".webp")
    expect(page.locator("#job-cost")).to_contain_text("credits charged")
    page.get_by_text("What was asked").click()
    expect(page.locator("#job-request")).to_contain_text('"format": "webp"')
    assert_accessible(page)
    shot(page, "job")

    # A video job: the output plays in the page's video player.
    page.goto("/jobs/new")
    page.get_by_label("What to do").select_option("video.transcode")
    # Only videos are offered, and none is chosen for the person.
    expect(page.get_by_label("File")).to_have_value("")
    options = page.get_by_label("File").locator("option").all_inner_texts()
    assert any(clip_small.name in o for o in options) and not any(png_image.name in o for o in options)
    page.get_by_label("File").select_option(label=next(o for o in options if clip_small.name in o))
    page.get_by_label("Preset").select_option("mp4_360p")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/job_*")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)
    video = page.locator("#outputs video")
    expect(video).to_be_visible()
    # Polled from here: wait_for_function re-checks by evaluating a string in the page, which
    # the Content-Security-Policy rightly refuses; a locator's evaluate is not refused.
    deadline = time.monotonic() + 20
    while video.evaluate("v => v.readyState") < 1:
        assert time.monotonic() < deadline, "the video's metadata never loaded"
        time.sleep(0.1)
    assert video.evaluate("v => v.duration") > 0

    # The jobs list shows both, finished, and filters by status.
    page.goto("/jobs")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    expect(page.locator('#jobs tbody tr[data-status="succeeded"]')).to_have_count(2)
    page.get_by_label("Status").select_option("failed")
    expect(page.locator("#jobs tbody tr")).to_have_count(0)
    expect(page.locator("#jobs-status")).to_have_text("No jobs with this status.")
    page.get_by_label("Status").select_option("succeeded")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    shot(page, "jobs")


def test_bad_input_shows_the_apis_message_and_spends_nothing(
    page, site: Platform, make_person, png_image, tmp_path
):
    person = make_person(credits=5)
    log_in(page, person, next_path="/library")
    # Larger than this deployment takes: refused before a byte is sent, with the limit named.
    big = tmp_path / "big.mp4"
    with big.open("wb") as fh:
        fh.truncate(site.settings.max_upload_bytes + 1)
    page.locator("#file-input").set_input_files(str(big))
    expect(page.locator("#uploads li").first).to_contain_text(
        "too large: files of up to 8.0 MB can be uploaded here"
    )
    assert page.locator("#uploads li").first.locator("progress").count() == 0  # nothing was sent
    page.locator("#file-input").set_input_files(str(png_image))
    expect(page.locator("#uploads li").nth(1)).to_contain_text("uploaded")
    expect(page.locator("#files li")).to_have_count(1)
    page.goto("/jobs/new")
    page.get_by_label("What to do").select_option("image.resize")
    page.get_by_label("File").select_option(index=1)
    page.get_by_label("Width").fill("0")
    page.get_by_label("Height").fill("10")
    page.get_by_role("button", name="Submit job").click()
    alert = page.locator("#job-form [role=alert]")
    expect(alert).to_contain_text("width")
    expect(page.get_by_label("Width")).to_have_attribute("aria-invalid", "true")
    page.goto("/credits")
    expect(page.locator("#available")).to_have_text("5.00")

    # Delete from the library: the tile goes, the storage is given back.
    page.goto("/library")
    expect(page.locator("#storage-text")).not_to_contain_text("0 B of")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#files li").first.get_by_role("button", name="Delete picture.png").click()
    expect(page.locator("#files li")).to_have_count(0)
    expect(page.locator("#files-status")).to_have_text("Deleted picture.png.")
    page.reload()
    expect(page.locator("#storage-text")).to_contain_text("0 B of")
    expect(page.locator("#library-empty")).to_be_visible()

    # Log out: the pages send one back to log in.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto("/library")
    page.wait_for_url("**/login?next=/library")


def test_api_keys_are_shown_once_copied_listed_and_revoked(page, site: Platform, make_person):
    person = make_person()
    log_in(page, person, next_path="/keys")
    page.get_by_label("Name").fill("render server")
    page.get_by_role("button", name="Create key").click()
    value = page.get_by_label("New API key")
    expect(value).to_have_value(re.compile(r"^fk_live_\w+$"))
    key = value.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    row = page.locator("#keys tbody tr").first
    expect(row).to_contain_text("render server")
    expect(row).to_contain_text(key[:16])
    expect(row).to_contain_text("never")
    shot(page, "keys")

    # The key works for programs; its last use shows after a reload, and the key itself never again.
    headers = {"Authorization": f"Bearer {key}"}
    assert requests.get(f"{site.base}/v1/account", headers=headers, timeout=10).status_code == 200
    page.reload()
    assert key not in page.content()
    expect(page.locator("#keys tbody tr").first).not_to_contain_text("never")

    page.locator("#keys tbody tr").first.get_by_role("button", name="Revoke render server").click()
    page.locator("#keys tbody tr").first.get_by_role("button", name="Yes, revoke").click()
    expect(page.locator("#keys tbody tr").first).to_contain_text("revoked")
    assert requests.get(f"{site.base}/v1/account", headers=headers, timeout=10).status_code == 401


def test_credits_show_lots_history_and_buy_a_pack_through_checkout(page, make_person, stripe):
    person = make_person(credits=50)
    log_in(page, person, next_path="/credits")
    expect(page.locator("#available")).to_have_text("50.00")
    expect(page.locator("#lots tbody tr")).to_have_count(1)
    expect(page.locator("#lots tbody tr").first).to_contain_text("grant")
    expect(page.locator("#history tbody tr").first).to_contain_text("Credits granted")
    shot(page, "credits")
    pack = page.locator("#packs li").first
    pack_credits = int(float(pack.locator(".big").inner_text().split()[0].replace(",", "")))
    pack.get_by_role("button").click()
    page.wait_for_url(f"{stripe.url}/pay/*")
    # Going back from the checkout changes nothing.
    page.locator("#back").click()
    page.wait_for_url("**/billing/cancel")
    expect(page.locator("#billing-return")).to_contain_text("Nothing was charged")
    page.get_by_role("link", name="Back to credits").click()
    page.locator("#packs li").first.get_by_role("button").click()
    page.wait_for_url(f"{stripe.url}/pay/*")
    page.locator("#pay").click()
    page.wait_for_url("**/billing/success?session_id=cs_test_*")
    expect(page.locator("#available")).to_have_text(f"{50 + pack_credits:,}.00")
    shot(page, "billing-success")


def test_profile_saves_and_refuses_a_bad_website(page, make_person):
    person = make_person()
    log_in(page, person, next_path="/profile")
    expect(page.get_by_label("Email")).to_have_value(person.email)
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Company").fill("Analytical Engines")
    page.get_by_label("Website").fill("ftp://example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#profile-form .message")).to_contain_text("http(s)")
    page.get_by_label("Website").fill("https://example.com")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#profile-form .message")).to_have_text("Saved.")
    page.reload()
    expect(page.get_by_label("First name")).to_have_value("Ada")
    expect(page.get_by_label("Website")).to_have_value("https://example.com")
    shot(page, "profile")


def test_analytics_load_only_after_consent_and_go_when_it_is_withdrawn(page, make_person):
    page.context.clear_cookies()  # a first visit: no choice made yet
    person = make_person()
    log_in(page, person)
    loaded = "() => [!!window.faktrySrcAnalytics, !!window.faktryInlineAnalytics]"
    banner = page.get_by_role("region", name="Cookie consent")
    expect(banner).to_be_visible()
    assert page.locator("script[data-analytics]").count() == 0
    assert page.evaluate(loaded) == [False, False]
    shot(page, "consent-banner")

    page.get_by_role("button", name="Accept analytics").click()
    expect(banner).to_be_hidden()
    page.wait_for_function("window.faktrySrcAnalytics && window.faktryInlineAnalytics")
    assert page.locator("script[data-analytics]").count() == 2
    # Remembered on the next page.
    page.goto("/library")
    expect(banner).to_be_hidden()
    page.wait_for_function("window.faktrySrcAnalytics && window.faktryInlineAnalytics")
    cookies = {c["name"] for c in page.context.cookies()}
    assert {"_fa_src", "_fa_inline"} <= cookies

    page.get_by_role("button", name="Cookie settings").click()
    expect(banner).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Necessary cookies only").click()
    expect(banner).to_be_hidden()
    assert page.locator("script[data-analytics]").count() == 0
    assert page.evaluate(loaded) == [False, False]
    cookies = {c["name"] for c in page.context.cookies()}
    assert not {"_fa_src", "_fa_inline"} & cookies
    page.goto("/jobs")
    assert page.evaluate(loaded) == [False, False]


def test_pages_read_on_a_phone(chromium, site: Platform, make_person):
    person = make_person()
    context = chromium.new_context(base_url=site.base, viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        log_in(page, person)
        for path in ("/jobs", "/jobs/new", "/library", "/credits", "/keys", "/profile"):
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert_fits(page)
            assert_accessible(page)
        shot(page, "phone-profile")
        page.context.clear_cookies()
        for path in ("/login", "/signup"):
            page.goto(path)
            assert_fits(page)
            assert_accessible(page)
    finally:
        context.close()


def test_the_keyboard_alone_is_enough(page, make_person):
    person = make_person()
    log_in(page, person, next_path="/keys")  # log_in types and presses Enter only
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    # From the main content, Tab reaches the form; Enter submits it.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "key-name":
            break
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("typed only")
    page.keyboard.press("Enter")
    expect(page.get_by_label("New API key")).to_be_focused()
    expect(page.locator("#keys tbody tr").first).to_contain_text("typed only")
