"""A newcomer's first success on `faktry up`, as they meet it: sign up, see the starter
credits, upload a video, run the job the library offers, watch the HLS output play, confirm
the email address with the link `faktry up` logs (no SMTP server: the mail is kept), buy
credits in test mode, then the same pages on a phone. No console errors and no sideways
scroll anywhere; the screenshots are kept under ``test-artifacts/browser/first-success/``."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests import services as svc
from tests.browser.conftest import ARTIFACTS, _expected_console_error, assert_accessible, assert_fits
from tests.platform import Proc

PASSWORD = "first success please"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Up:
    base: str
    #: What `faktry up` printed, its log lines included.
    log: Path


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`faktry up` on a free port, with nothing configured: the zero-setup default."""
    home = tmp_path_factory.mktemp("up")
    port = svc.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKTRY_")}
    env["FAKTRY_WORKER_PROCESSES"] = "1"
    proc = Proc("up", [sys.executable, "-m", "faktry.cli", "up", "--port", str(port)], env, home, cwd=home)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while f"faktry is up at {base}" not in proc.output():
            assert proc.popen.poll() is None and time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        yield Up(base, proc.log)
    finally:
        proc.stop(timeout=60)


def _page(chromium: Any, base: str, viewport: dict[str, int], errors: list[str], *, phone: bool) -> Any:
    context = chromium.new_context(base_url=base, viewport=viewport, is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"{page.url}: console {msg.type}: {msg.text}")
            if msg.type == "error" and not _expected_console_error(msg.text)
            else None
        ),
    )
    return page


def _shot(page: Any, name: str, *, whole: bool = True) -> None:
    folder = ARTIFACTS / "first-success"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=whole)


def _balance(page: Any) -> float:
    return float(page.locator("#balance-amount").inner_text().split()[0].replace(",", ""))


def _until(locator: Any, script: str, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not locator.evaluate(script):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_sign_up_to_a_played_hls_output_and_a_test_mode_purchase_on_faktry_up(
    up: Up, chromium: Any, clip_small: Path
) -> None:
    errors: list[str] = []
    page = _page(chromium, up.base, DESKTOP, errors, phone=False)
    email = "newcomer@example.com"

    # Sign up (the privacy policy a click away); the starter credits are in the header.
    page.goto("/signup")
    expect(page.get_by_role("link", name=re.compile("privacy", re.I)).first).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("I am 16 years of age or older").check()
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/library")
    expect(page.locator("#balance-amount")).to_have_text("20.00 credits")
    expect(page.locator("#library-empty")).to_be_visible()
    assert_fits(page)
    _shot(page, "desktop-library-empty")

    # Upload a video; the library offers the job that fits it.
    page.locator("#file-input").set_input_files(str(clip_small))
    row = page.locator("#uploads li").first
    expect(row).to_contain_text("uploaded")
    row.get_by_role("link", name="Next: Convert a video").click()
    page.wait_for_url("**/jobs/new?file=*")
    expect(page.get_by_label("What to do")).to_have_value("video.transcode")
    page.get_by_label("Preset").select_option("hls")
    expect(page.locator("#quote")).to_have_text(
        re.compile(r"^Price: \d+\.\d\d credits \(you have 20\.00 credits\)$")
    )
    assert_fits(page)
    _shot(page, "desktop-job-form")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/job_*")
    job_path = page.url.split(up.base, 1)[1]

    # The job finishes on the workers `faktry up` started, and its HLS output plays here.
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120_000)
    video = page.locator("#outputs li").first.locator("video")
    _until(video, "v => v.readyState >= 2", "the HLS output never had a frame to show")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    _until(video, "v => v.currentTime > 0", "the HLS output never played")
    # The header follows the charge.
    charged = float(page.locator("#job-cost").inner_text().split()[0])
    expect(page.locator("#balance-amount")).to_have_text(f"{20 - charged:.2f} credits")
    assert_accessible(page)
    assert_fits(page)
    _shot(page, "desktop-hls-playing")

    # Confirm the address first: with no SMTP server the mail is kept and its link logged.
    deadline = time.monotonic() + 30
    while not (links := re.findall(rf"{re.escape(up.base)}/verify-email\?token=\S+", up.log.read_text())):
        assert time.monotonic() < deadline, "the verification link never reached the log"
        time.sleep(0.2)
    page.goto(links[-1].split(up.base, 1)[1])
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page.locator("#verify-done")).to_be_visible()

    # Buy credits in test mode: faktry's own checkout, marked, then back with the credits.
    page.goto("/credits")
    before = _balance(page)
    pack = page.locator("#packs li").first
    pack_credits = float(pack.locator(".big").inner_text().split()[0].replace(",", ""))
    pack.get_by_role("button").click()
    page.wait_for_url("**/billing/test-checkout/*")
    expect(page.locator("#test-mode")).to_contain_text("TEST MODE")
    assert_fits(page)
    _shot(page, "desktop-test-checkout")
    page.locator("#pay").click()
    page.wait_for_url("**/billing/success?session_id=*")
    expect(page.locator("#billing-return")).to_contain_text("added")
    expect(page.locator("#balance-amount")).to_have_text(f"{before + pack_credits:,.2f} credits")
    _shot(page, "desktop-billing-success")
    page.context.close()

    # The same person on a phone: every page they met fits the screen and logs no error.
    phone = _page(chromium, up.base, PHONE, errors, phone=True)
    phone.goto("/login?next=/library")
    phone.get_by_label("Email").fill(email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.keyboard.press("Enter")
    phone.wait_for_url(lambda url: urlsplit(url).path == "/library")
    for path in (
        "/library",
        "/jobs",
        job_path,
        "/jobs/new",
        "/credits",
        "/keys",
        "/profile",
        "/privacy",
        "/docs",
    ):
        phone.goto(path)
        phone.wait_for_load_state("networkidle")
        assert urlsplit(phone.url).path == path
        if path != "/docs":  # the reference stands alone, without the site's header
            expect(phone.locator("#balance-amount")).to_be_visible()
        assert_fits(phone)
        # The whole reference would be a picture some metres long: its first screen will do.
        _shot(phone, "phone-" + path.strip("/").replace("/", "-"), whole=path != "/docs")
    phone.context.close()
    assert not errors, "\n".join(errors)
