"""The API reference at ``/docs`` in a real browser: Redoc, served by faktry, renders every
operation from ``/v1/openapi.json`` with its example request and answer; the page asks no
other origin for anything, shows no console error (the ``page`` fixture checks), and reads
on a phone without sideways scrolling."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, log_in
from tests.platform import Platform
from web.openapi_doc import build


def _shot(page: Any, name: str) -> None:
    """What the window shows (the whole reference is taller than a screenshot should be)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _record_requests(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def _foreign(seen: list[str], site: Platform) -> list[str]:
    own = urlsplit(site.base).netloc
    return [url for url in seen if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own]


def test_the_reference_renders_every_operation_with_examples_and_asks_no_other_origin(page, site: Platform):
    seen = _record_requests(page)
    page.goto("/docs")
    expect(page.locator("#docs-status")).to_be_hidden(timeout=30_000)
    assert seen and _foreign(seen, site) == []
    summaries = [
        operation["summary"]
        for item in build()["paths"].values()
        for method, operation in item.items()
        if method in ("get", "post", "patch", "delete", "put")
    ]
    redoc = page.locator("#redoc")
    # Redoc renders the operations a few at a time: wait for the last of them.
    page.wait_for_function(
        "n => document.querySelectorAll('#redoc h2').length >= n", arg=len(summaries), timeout=60_000
    )
    expect(redoc.locator('[data-section-id="tag/keys/operation/createApiKey"] h2')).to_have_text(
        "Create an API key"
    )
    rendered = redoc.locator("h2").all_inner_texts()
    assert set(summaries) <= {text.strip() for text in rendered}, set(summaries) - set(rendered)

    # An operation's example request (curl) and example answer are on the page.
    create_key = page.locator('[data-section-id="tag/keys/operation/createApiKey"]')
    create_key.scroll_into_view_if_needed()
    expect(create_key).to_contain_text('{"name": "nightly export"}')  # the JSON body
    expect(create_key).to_contain_text('"key": "fk_live_')  # the answer
    create_key.get_by_role("tab", name="curl").click()
    expect(create_key).to_contain_text('curl -X POST "$FAKTRY_URL/v1/keys"')
    create_key.get_by_role("tab", name="Python").click()
    expect(create_key).to_contain_text("answer = requests.post(")
    # Redoc's styles applied: its style elements hold rules, and its sidebar sticks.
    assert page.evaluate(
        """() => [...document.querySelectorAll('style[data-styled]')]
                 .some(s => s.sheet && s.sheet.cssRules.length > 10)"""
    )
    assert page.locator(".menu-content").evaluate("el => getComputedStyle(el).position") == "sticky"
    _shot(page, "docs-create-key")
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "docs")
    assert seen and _foreign(seen, site) == []


def test_the_reference_reads_on_a_phone_and_from_a_logged_in_menu(page, site: Platform, make_person):
    seen = _record_requests(page)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, make_person())
    page.goto("/docs")
    expect(page.locator("#docs-status")).to_be_hidden(timeout=30_000)
    expect(page.locator('#redoc [data-section-id="tag/keys/operation/createApiKey"] h2')).to_have_text(
        "Create an API key", timeout=60_000
    )
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    _shot(page, "docs-phone")
    assert _foreign(seen, site) == []
