"""The library uploads with the tus protocol, resumably: an upload stopped by a reload is
said on the page with how far it got, carries on from that byte when the same file is chosen
again, and arrives byte for byte; an unfinished upload can be forgotten, which gives its
reserved storage back."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, log_in, shot

CHUNK = 1024 * 1024  # the site's FAKTRY_UPLOAD_CHUNK_BYTES


def _noise_png(path: Path) -> Path:
    """A PNG of random pixels (about 3 MB: it does not compress), several chunks long."""
    Image.frombytes("RGB", (1000, 1000), os.urandom(3 * 1000 * 1000)).save(path, optimize=False)
    assert path.stat().st_size > 2 * CHUNK
    return path


def _stop_after_the_first_piece(page: Any) -> None:
    """Let the first PATCH through, hold every later one unanswered (a connection gone
    quiet) until the page goes away."""
    sent = {"patches": 0}

    def handle(route: Any) -> None:
        if route.request.method != "PATCH":
            route.continue_()
            return
        sent["patches"] += 1
        if sent["patches"] == 1:
            route.continue_()
        # Later ones are left unanswered.

    page.route(re.compile(r".*/v1/uploads/tus/.*"), handle)


def test_an_upload_stopped_by_a_reload_resumes_from_where_it_stopped(page, site, make_person, tmp_path):
    person = make_person(credits=5)
    http = api_session(site, person)
    source = _noise_png(tmp_path / "harbour-night.png")
    log_in(page, person, next_path="/library")

    _stop_after_the_first_piece(page)
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204):
        page.locator("#file-input").set_input_files(str(source))
    row = page.locator("#uploads li").first
    expect(row).to_contain_text(" of ")  # progress: "1.0 MB of 3.0 MB"

    # A reload mid-upload (the second piece still unanswered): the page says what stopped,
    # and how far it got.
    page.reload()
    stopped = page.locator('#uploads li[data-state="interrupted"]')
    expect(stopped).to_have_count(1)
    page.unroute(re.compile(r".*/v1/uploads/tus/.*"))
    expect(stopped).to_contain_text("harbour-night.png")
    expect(stopped).to_contain_text("choose the file again to resume")
    expect(stopped.locator("progress")).to_have_attribute("value", re.compile(r"^0\.[1-9]"))
    assert_accessible(page)
    shot(page, "library-upload-stopped")

    # The same file chosen again: the upload carries on from the byte the server kept.
    offsets: list[str] = []
    page.on(
        "request",
        lambda r: offsets.append(r.headers.get("upload-offset", "")) if r.method == "PATCH" else None,
    )
    page.locator("#file-input").set_input_files(str(source))
    expect(stopped).to_have_count(0)  # its line gives way to the upload's own
    done = page.locator('#uploads li[data-state="uploaded"]')
    expect(done).to_have_count(1, timeout=60_000)
    expect(done).to_have_attribute("data-resumed", "true")
    assert offsets and int(offsets[0]) == CHUNK, offsets  # not from the start

    file_id = done.get_attribute("data-file-id")
    stored = http.get(f"{site.base}/v1/files/{file_id}").json()
    assert stored["size"] == source.stat().st_size
    assert stored["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert stored["filename"] == "harbour-night.png" and stored["kind"] == "image"
    expect(page.locator(f'#files li[data-file-id="{file_id}"]')).to_have_count(1)


def test_an_unfinished_upload_can_be_forgotten_and_its_storage_is_given_back(
    page, site, make_person, tmp_path
):
    person = make_person(credits=5)
    http = api_session(site, person)
    source = _noise_png(tmp_path / "quay.png")
    storage = lambda: http.get(f"{site.base}/v1/account").json()["storage"]  # noqa: E731
    before = storage()
    log_in(page, person, next_path="/library")

    _stop_after_the_first_piece(page)
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204):
        page.locator("#file-input").set_input_files(str(source))
    page.reload()
    stopped = page.locator('#uploads li[data-state="interrupted"]')
    expect(stopped).to_contain_text("quay.png")
    page.unroute(re.compile(r".*/v1/uploads/tus/.*"))
    assert storage()["reserved_bytes"] == before["reserved_bytes"] + source.stat().st_size  # held

    stopped.get_by_role("button", name="Forget").click()
    expect(stopped).to_have_count(0)
    assert storage() == before  # nothing reserved any more, nothing used
    page.reload()
    expect(page.locator('#uploads li[data-state="interrupted"]')).to_have_count(0)
