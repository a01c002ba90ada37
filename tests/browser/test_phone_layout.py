"""Every page on a phone (390x844) and on a desktop (1280x800), logged out, as a person and
as staff: nothing scrolls sideways, nothing logs an error, lists become stacked rows on the
phone with status and progress in view. And what a person meets around their account: the
balance in the header, the privacy policy, the consent banner on a phone, revoking a key
asked and answered in the page, deleting the account with a wrong and then the right
password. Screenshots are kept under ``test-artifacts/browser/phone/``."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import requests
from flask import Flask
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.conftest import (
    ARTIFACTS,
    _expected_console_error,
    api_session,
    assert_accessible,
    assert_fits,
    log_in,
)
from tests.platform import Platform

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
SHOTS = ARTIFACTS / "phone"
#: Pages anyone may see; every other page of the pages blueprint needs a session.
PUBLIC = {
    "/login", "/signup", "/privacy", "/account/deleted", "/gallery", "/gallery/<entry_id>", "/verify-email",
    "/password-reset", "/password-reset/confirm",
}  # fmt: skip
#: Pages this site does not serve: it takes payments through Stripe, so faktry's own test
#: checkout is not there (tests/browser/test_first_success.py walks it on `faktry up`).
NOT_HERE = {"/billing/test-checkout/<session_id>", "/gallery/media/<entry_id>"}  # and media, not a page


def page_paths() -> list[str]:
    """Every GET page of the pages blueprint, as its URL rule: a new page is visited too."""
    from web import pages

    app = Flask("pages-only")
    app.register_blueprint(pages.blueprint)
    rules = (rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("pages."))
    return sorted(rule for rule in rules if rule not in NOT_HERE)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@contextmanager
def browser_page(chromium: Any, site: Platform, size: str, *, consent: bool = True) -> Iterator[Any]:
    """A fresh context at ``size``; console errors and page errors fail the test."""
    viewport = SIZES[size]
    context = chromium.new_context(base_url=site.base, viewport=viewport, is_mobile=size == "phone")
    if consent:
        context.add_cookies([{"name": "faktry_consent", "value": "necessary", "url": site.base}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"{page.url}: console {msg.type}: {msg.text}")
            if msg.type == "error" and not _expected_console_error(msg.text)
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not errors, "\n".join(errors)


def settle(page: Any) -> None:
    """Wait until the page's first answers are in (lists filled or said empty). Pages that
    keep an event stream open never go quiet; for them, "load" and the lists are enough."""
    page.wait_for_load_state("load")
    with suppress(PlaywrightTimeout):
        page.wait_for_load_state("networkidle", timeout=5_000)
    page.wait_for_function(
        """() => [...document.querySelectorAll(".table-wrap tbody")].every((body) => body.rows.length
            || [...document.querySelectorAll("[role=status], .message")].some((el) => !el.hidden && el.textContent.trim()))"""
    )


@pytest.fixture(scope="module")
def furnished(site: Platform, make_person: Any) -> dict[str, Any]:
    """A person whose lists have something in them (a key, a file, a finished job, a
    workflow and its run, a brand, a project), and a staff member."""
    person = make_person(credits=50)
    http = api_session(site, person)
    base = site.base
    assert http.post(f"{base}/v1/keys", json={"name": "render server"}).status_code == 201
    picture = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 120, 200)).save(picture, format="PNG")
    file_id = http.post(f"{base}/v1/files", files={"file": ("picture.png", picture.getvalue())}).json()["id"]
    resize = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    job_id = http.post(f"{base}/v1/jobs", json=resize).json()["id"]
    graph = {"nodes": {"probe": {"type": "media.probe", "input": {"file_id": file_id}}}}
    flow = http.post(f"{base}/v1/workflows", json={"name": "probe it", "graph": graph}).json()
    run = http.post(f"{base}/v1/workflows/{flow['id']}/runs", json={"inputs": {}}).json()
    brand = http.post(f"{base}/v1/brands", json={"name": "Acme"}).json()
    project = {"name": "Spring", "scenes": [{"script": "Hello.", "media": {"file_id": file_id}}]}
    project_id = http.post(f"{base}/v1/projects", json=project).json()["id"]
    drawing = {
        "type": "image.generate",
        "input": {"prompt": "a blue square"},
        "params": {"model": "local-image"},
    }
    drawn = http.post(f"{base}/v1/jobs", json=drawing).json()["id"]
    for _ in range(300):  # the jobs' rows show their final status and full progress
        states = {http.get(f"{base}/v1/jobs/{j}").json()["status"] for j in (job_id, drawn)}
        if states <= {"succeeded", "failed"}:
            break
        requests.get(f"{base}/healthz", timeout=5)
    shown = {"job_id": drawn, "category": "abstract", "display_name": "Phone tester"}
    entry = http.post(f"{base}/v1/gallery", json=shown).json()
    values = {
        "job_id": job_id, "workflow_id": flow["id"], "run_id": run["id"], "brand_id": brand["id"],
        "project_id": project_id, "entry_id": entry["id"],
    }  # fmt: skip
    return {"person": person, "staff": make_person(staff=True, credits=0), "values": values}


def concrete(rule: str, values: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        assert name in values, f"{rule}: give the test a {name} to visit this page with"
        return values[name]

    return re.sub(r"<([^>]+)>", fill, rule)


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_no_page_scrolls_sideways_or_logs_an_error_logged_out_as_a_person_and_as_staff(
    chromium: Any, site: Platform, furnished: dict[str, Any], size: str
):
    rules = page_paths()
    assert {"/keys", "/admin/tenants", "/privacy", "/jobs/<job_id>"} <= set(rules)
    paths = {concrete(rule, furnished["values"]): rule for rule in rules if rule != "/"}
    visited: set[str] = set()
    with browser_page(chromium, site, size) as page:
        for path in sorted(PUBLIC):
            page.goto(path)
            settle(page)
            assert_fits(page)
            assert_accessible(page)
            shot(page, f"{size}-out{path.replace('/', '-')}")
            visited.add(path)
    for who in ("person", "staff"):
        with browser_page(chromium, site, size) as page:
            log_in(page, furnished[who])
            for path in paths:
                if who == "staff" and not path.startswith("/admin"):
                    continue  # staff see the people's pages as anyone does; the console is theirs
                if path in PUBLIC and who == "person":
                    continue  # seen logged out; the header's balance is checked below
                page.goto(path)
                if who == "person" and path.startswith("/admin"):
                    expect(page.get_by_role("heading", name="Staff only")).to_be_visible()
                settle(page)
                assert_fits(page)
                assert_accessible(page)
                shot(page, f"{size}-{who}{re.sub(r'[^a-z0-9]+', '-', paths[path].lower())}")
                visited.add(path)
    assert visited == set(paths) | PUBLIC


def _row_facts(page: Any, table: str) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """(table) => {
                const row = document.querySelector(`${table} tbody tr`);
                const cells = [...row.children];
                return {
                    display: getComputedStyle(row).display,
                    labels: cells.map((cell) => getComputedStyle(cell, "::before").content),
                    right: Math.max(...cells.map((cell) => cell.getBoundingClientRect().right)),
                    width: window.innerWidth,
                    roles: [row.getAttribute("role"), ...cells.map((cell) => cell.getAttribute("role"))],
                };
            }""",
            table,
        )
    )


def test_lists_become_stacked_rows_on_a_phone_with_status_and_progress_in_view(
    chromium: Any, site: Platform, furnished: dict[str, Any]
):
    with browser_page(chromium, site, "phone") as page:
        log_in(page, furnished["person"], next_path="/jobs")
        row = page.locator("#jobs tbody tr").first
        expect(row.locator(".badge")).to_have_text(re.compile("succeeded|failed"))
        facts = _row_facts(page, "#jobs")
        assert facts["display"] == "block"
        # Each cell shows its column's name before its value (alt text "" for screen
        # readers, who hear the column header instead).
        assert [re.sub(r'"|\s*/\s*""?$', "", label) for label in facts["labels"][:4]] == [
            "Job", "Type", "Status", "Progress",
        ]  # fmt: skip
        assert facts["right"] <= facts["width"]
        assert facts["roles"][:3] == ["row", "cell", "cell"]
        expect(row.locator(".badge")).to_be_in_viewport()
        expect(row.locator("progress")).to_be_visible()
        assert row.locator("progress").bounding_box()["width"] > 100
        shot(page, "stacked-jobs")

        page.goto("/keys")
        expect(page.locator("#keys tbody tr")).to_have_count(1)
        facts = _row_facts(page, "#keys")
        assert facts["display"] == "block" and facts["right"] <= facts["width"]
        # Below the form that makes keys (name, scopes, expiry): scrolled to, it fits the screen.
        status_cell = page.locator("#keys tbody tr").first.get_by_text("active")
        status_cell.scroll_into_view_if_needed()
        expect(status_cell).to_be_in_viewport()
        assert_fits(page)
        shot(page, "stacked-keys")

    with browser_page(chromium, site, "phone") as page:
        log_in(page, furnished["staff"], next_path="/admin/tenants")
        expect(page.locator("#tenants tbody tr").first).to_be_visible()
        facts = _row_facts(page, "#tenants")
        assert facts["display"] == "block" and facts["right"] <= facts["width"]
        assert_fits(page)
        shot(page, "stacked-tenants")
    with browser_page(chromium, site, "desktop") as page:
        log_in(page, furnished["staff"], next_path="/admin/tenants")
        expect(page.locator("#tenants tbody tr").first).to_be_visible()
        assert _row_facts(page, "#tenants")["display"] == "table-row"  # a table where there is room


def test_the_header_shows_the_balance_on_every_page_and_leads_to_credits(
    chromium: Any, site: Platform, make_person: Any
):
    person = make_person(credits=12)
    http = api_session(site, person)
    for size in ("phone", "desktop"):
        with browser_page(chromium, site, size) as page:
            log_in(page, person, next_path="/keys")
            for path in ("/keys", "/library", "/profile", "/privacy"):
                page.goto(path)
                balance = page.get_by_role("link", name="Balance: 12.00 credits")
                expect(balance).to_be_in_viewport()
            balance.click()
            page.wait_for_url("**/credits")
            # A page that learns a newer balance shows it without a reload.
            page.evaluate("faktry.showBalance(7_505)")
            expect(page.locator("#balance-amount")).to_have_text("7.50 credits")
            shot(page, f"{size}-balance")
    assert http.get(f"{site.base}/v1/account").json()["credits"]["available"] == 12_000


def test_the_privacy_policy_is_linked_from_the_footer_sign_up_and_the_banner_which_stays_on_a_phone(
    chromium: Any, site: Platform
):
    with browser_page(chromium, site, "phone", consent=False) as page:
        page.goto("/signup")
        banner = page.get_by_role("region", name="Cookie consent")
        expect(banner).to_be_in_viewport(ratio=1)
        expect(banner.get_by_role("button", name="Accept analytics")).to_be_in_viewport()
        expect(banner.get_by_role("button", name="Necessary cookies only")).to_be_in_viewport()
        box = banner.bounding_box()
        assert box["y"] + box["height"] <= PHONE["height"] + 1 and box["height"] < PHONE["height"] / 2
        assert_fits(page)
        shot(page, "consent-banner-phone")
        # The end of the page is not hidden behind the banner.
        page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        footer_link = page.locator("footer").get_by_role("link", name="Privacy policy")
        assert footer_link.bounding_box()["y"] + footer_link.bounding_box()["height"] <= box["y"]
        banner.get_by_role("link", name="How faktry uses cookies").click()
        page.wait_for_url("**/privacy#section-8")
        expect(page.get_by_role("heading", name="8. Cookies and Tracking Technologies")).to_be_visible()
        banner.get_by_role("button", name="Necessary cookies only").click()
        expect(banner).to_be_hidden()

        page.goto("/signup")
        page.locator("main").get_by_role("link", name="privacy policy").click()
        page.wait_for_url("**/privacy")
        expect(page.get_by_role("heading", level=1)).to_have_text("Privacy Policy")
        expect(page.get_by_role("heading", name="13. Account Deletion")).to_be_visible()
        page.locator("footer").get_by_role("link", name="Privacy policy").click()
        page.wait_for_url("**/privacy")
        assert_fits(page)
        shot(page, "privacy-phone")


def test_revoking_a_key_asks_in_the_page_and_says_it_is_done(page, site: Platform, make_person):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    person = make_person()
    key = api_session(site, person).post(f"{site.base}/v1/keys", json={"name": "render server"}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    log_in(page, person, next_path="/keys")
    row = page.locator("#keys tbody tr").first
    row.get_by_role("button", name="Revoke render server").click()
    question = row.get_by_role("group", name="Revoke render server?")
    expect(question).to_contain_text("Programs using it stop working at once.")
    expect(question.get_by_role("button", name="Yes, revoke")).to_be_focused()
    # "Keep it" changes nothing and gives the keyboard back its place.
    page.keyboard.press("Tab")
    expect(question.get_by_role("button", name="Keep it")).to_be_focused()
    page.keyboard.press("Enter")
    expect(row.get_by_role("button", name="Revoke render server")).to_be_focused()
    assert requests.get(f"{site.base}/v1/account", headers=headers, timeout=10).status_code == 200

    page.keyboard.press("Enter")
    expect(question.get_by_role("button", name="Yes, revoke")).to_be_focused()
    shot(page, "revoke-asked")
    page.keyboard.press("Enter")
    status = page.locator("#keys-status")
    expect(status).to_have_text("Revoked render server. Programs using it can no longer call faktry.")
    expect(status).to_be_focused()
    expect(page.locator("#keys tbody tr").first).to_contain_text("revoked")
    expect(page.locator("#keys tbody tr").first.get_by_role("button")).to_have_count(0)
    assert requests.get(f"{site.base}/v1/account", headers=headers, timeout=10).status_code == 401
    assert dialogs == []  # asked in the page, not in a browser dialog
    shot(page, "revoke-done")


def test_deleting_the_account_says_a_wrong_password_is_wrong_then_what_was_deleted_and_kept(
    page, site: Platform, make_person
):
    person = make_person()
    log_in(page, person, next_path="/profile")
    page.on("dialog", lambda dialog: dialog.accept())
    field = page.get_by_label("Type your password to confirm")
    field.fill("not my password at all")
    page.get_by_role("button", name="Delete my account").click()
    error = page.locator("#delete-password-error")
    expect(error).to_have_text(re.compile("not your password"))
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    assert field.evaluate("el => el.getAttribute('aria-describedby')") == "delete-password-error"
    shot(page, "delete-wrong-password")
    assert api_session(site, person).get(f"{site.base}/v1/account").status_code == 200

    field.fill(person.password)
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url("**/account/deleted")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is deleted")
    expect(page.get_by_role("region", name="What was deleted")).to_contain_text("API keys")
    expect(page.get_by_role("region", name="What is kept")).to_contain_text("Transaction records")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    assert_accessible(page)
    shot(page, "account-deleted")
    r = requests.post(f"{site.base}/v1/session", json={"email": person.email, "password": person.password})
    assert r.status_code == 401
