"""Brand guidelines in a real browser: a brand made from the list, its colours picked and
typed, its fonts chosen, voice, a persona, a logo and a mood image picked from the library;
the preview follows every change before anything is saved; a refused colour is marked where
it is; after saving, a reload shows the brand as it was saved, and the API agrees."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot
from tests.platform import Platform


def style(locator: Any, prop: str) -> str:
    """The element's computed style (a locator's evaluate: the page's CSP refuses string
    evaluation, see tests/browser/test_people.py)."""
    return str(locator.evaluate(f"el => getComputedStyle(el).{prop}"))


def test_a_brand_is_edited_with_a_live_preview_saved_and_shown_again_after_a_reload(
    page, site: Platform, make_person, png_image
):
    person = make_person(credits=5)
    http = api_session(site, person)
    logo, mood = (
        http.post(f"{site.base}/v1/files", files={"file": (name, png_image.read_bytes())}).json()["id"]
        for name in ("logo.png", "harbour.png")
    )
    log_in(page, person, next_path="/brands")
    expect(page.get_by_role("link", name="Brands")).to_have_attribute("aria-current", "page")
    expect(page.locator("#brands-empty")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Name").fill("Harbour Coffee")
    page.get_by_role("button", name="Create brand").click()
    page.wait_for_url(re.compile(r"/brands/brd_\w+$"))
    brand_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#brand-name")).to_have_value("Harbour Coffee")
    expect(page.locator("#swatch-primary")).to_contain_text("Primary: not set")

    # Colours: picked with the colour picker, or typed; the preview follows each at once.
    page.get_by_label("Primary colour", exact=True).fill("#123456")
    expect(page.locator("#hex-primary")).to_have_value("#123456")
    expect(page.locator("#swatch-primary")).to_have_attribute("data-color", "#123456")
    assert style(page.locator("#swatch-primary .brand-chip"), "backgroundColor") == "rgb(18, 52, 86)"
    assert style(page.locator("#preview-heading"), "color") == "rgb(18, 52, 86)"
    page.locator("#hex-accent").fill("#FF8800")
    expect(page.locator("#pick-accent")).to_have_value("#ff8800")
    expect(page.locator("#swatch-accent")).to_contain_text("Accent: #ff8800")
    assert style(page.locator("#preview-button"), "backgroundColor") == "rgb(255, 136, 0)"
    # Fonts: chosen from the list or typed; the sample text is set in them.
    page.get_by_label("Heading font").fill("Georgia")
    page.get_by_label("Body font").fill("Courier New")
    assert style(page.locator("#preview-heading"), "fontFamily").startswith("Georgia")
    assert style(page.locator("#preview-body"), "fontFamily").startswith('"Courier New"')
    expect(page.locator("#preview-fonts")).to_have_text("Headings in Georgia, text in Courier New.")
    page.get_by_role("button", name="Add a pairing").click()
    page.get_by_label("Pairing heading font").fill("Georgia")
    page.get_by_label("Pairing body font").fill("Verdana")
    page.get_by_label("Used for").fill("menus")
    # Voice, audience, a persona, the logo and a mood image from the library.
    page.get_by_label("Tagline").fill("Wake up to the sea")
    expect(page.locator("#preview-tagline")).to_have_text("Wake up to the sea")
    page.get_by_label("Mission").fill("Honest coffee.")
    page.get_by_label("Values (one a line)").fill("craft\nwarmth")
    page.get_by_label("Target audience").fill("Early risers")
    page.get_by_role("button", name="Add a persona").click()
    page.get_by_label("Persona name").fill("Morning Maria")
    page.get_by_label("Goals (one a line)").fill("a hot cup")
    page.get_by_label("Logo", exact=True).select_option(label="logo.png")
    expect(page.locator("#preview-logo img")).to_have_attribute("src", f"/v1/files/{logo}/content")
    page.get_by_label("harbour.png").check()
    page.get_by_label("Design-system notes").fill("8 px grid")

    # A colour that is not #rrggbb is refused by the API and marked where it was typed.
    page.locator("#hex-secondary").fill("sea blue")
    expect(page.locator("#swatch-secondary")).to_contain_text("Secondary: not set")
    page.get_by_role("button", name="Save brand").click()
    expect(page.locator("#brand-status")).to_contain_text("colors.secondary must be a colour written #rrggbb")
    expect(page.locator("#hex-secondary")).to_have_attribute("aria-invalid", "true")
    assert http.get(f"{site.base}/v1/brands/{brand_id}").json()["colors"]["primary"] is None  # nothing kept
    page.locator("#hex-secondary").fill("#f5f0e6")
    assert_accessible(page)
    shot(page, "brand-editor")
    page.get_by_role("button", name="Save brand").click()
    expect(page.locator("#save-status")).to_have_text("Saved Harbour Coffee.")
    expect(page.locator("#hex-secondary")).not_to_have_attribute("aria-invalid", "true")

    saved = http.get(f"{site.base}/v1/brands/{brand_id}").json()
    assert saved["colors"] == {"primary": "#123456", "secondary": "#f5f0e6", "accent": "#ff8800"}
    assert saved["typography"] == {
        "heading_font": "Georgia",
        "body_font": "Courier New",
        "pairings": [{"heading": "Georgia", "body": "Verdana", "use": "menus"}],
    }
    assert saved["voice"]["values"] == ["craft", "warmth"] and saved["voice"]["mission"] == "Honest coffee."
    assert saved["personas"][0]["name"] == "Morning Maria" and saved["personas"][0]["goals"] == ["a hot cup"]
    assert (saved["logo_file_id"], saved["mood_file_ids"]) == (logo, [mood])
    assert saved["design_notes"] == "8 px grid" and saved["audience"] == "Early risers"

    # A reload shows the brand as saved, the preview drawn from it.
    page.reload()
    expect(page.locator("#pick-primary")).to_have_value("#123456")
    expect(page.locator("#hex-accent")).to_have_value("#ff8800")
    expect(page.locator("#heading-font")).to_have_value("Georgia")
    expect(page.locator("#body-font")).to_have_value("Courier New")
    expect(page.get_by_label("Persona name")).to_have_value("Morning Maria")
    expect(page.get_by_label("harbour.png")).to_be_checked()
    expect(page.locator("#swatch-secondary")).to_have_attribute("data-color", "#f5f0e6")
    assert style(page.locator("#preview-heading"), "fontFamily").startswith("Georgia")
    assert style(page.locator("#preview-sample"), "backgroundColor") == "rgb(245, 240, 230)"
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    # The exports download with the session, and the list shows the palette.
    md = http.get(f"{site.base}{page.locator('#export-md').get_attribute('href')}")
    assert md.status_code == 200 and "| Primary | `#123456` |" in md.text
    page.get_by_role("link", name="All brands").click()
    card = page.locator(f'#brands li[data-brand-id="{brand_id}"]')
    expect(card).to_contain_text("Wake up to the sea")
    assert style(card.locator(".brand-chip").first, "backgroundColor") == "rgb(18, 52, 86)"
    assert_accessible(page)
    shot(page, "brands")
