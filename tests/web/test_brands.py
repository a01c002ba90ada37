"""Brand guidelines over ``/v1/brands``: every field the privacy policy lists is kept and given
back, a refused body names its field and keeps nothing, logo and mood images are the tenant's
own library images, and a brand exports as a Markdown brand book and as JSON with its files
named. The brand pages answer their owner and are 404 pages for everyone else. What the
editor does in a browser is in tests/browser/test_brand_pages.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from faktry.db import transaction
from pipelines.brands.models import Brand
from tests.web.helpers import upload

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


def full_body(logo: str | None = None, mood: list[str] | None = None) -> dict[str, Any]:
    """A brand with every part filled in."""
    return {
        "name": "Northwind Coffee",
        "description": "Small-batch roasters from the harbour.\nSince 1998.",
        "tagline": "Wake up to the sea",
        "logo_file_id": logo,
        "colors": {"primary": "#0A3D62", "secondary": "#f5f0e6", "accent": "#e58e26"},
        "typography": {
            "heading_font": "Playfair Display",
            "body_font": "Inter",
            "pairings": [{"heading": "Playfair Display", "body": "Lora", "use": "print menus"}],
        },
        "voice": {
            "mission": "Honest coffee for early risers.",
            "vision": "A harbour cafe in every port town.",
            "values": ["craft", "warmth", "honesty"],
            "personality": "Calm, salty, friendly.",
        },
        "audience": "Commuters and dock workers, 25 to 55.",
        "personas": [
            {
                "name": "Morning Maria",
                "role": "Ferry captain",
                "description": "Up at four, wants it strong.",
                "goals": ["a hot cup before shift"],
                "pain_points": ["queues", "weak brews"],
            }
        ],
        "mood_file_ids": mood or [],
        "design_notes": "Use 8 px spacing. Buttons are pill-shaped.",
    }


def count_brands(app: Any, tenant_id: str) -> int:
    with transaction(app.extensions["faktry"].sessions) as s:
        return int(s.scalar(select(func.count()).select_from(Brand).where(Brand.tenant_id == tenant_id)) or 0)


@pytest.fixture
def images(client, tenant, png_image) -> list[str]:
    return [upload(client, tenant, png_image, name=f"mood-{i}.png").json["id"] for i in range(3)]


def test_a_brand_keeps_every_part_and_is_read_listed_changed_and_deleted(client, tenant, images):
    body = full_body(logo=images[0], mood=images[1:])
    r = client.post("/v1/brands", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.json
    brand = r.json
    assert r.headers["Location"] == f"/v1/brands/{brand['id']}" and brand["id"].startswith("brd_")
    assert brand["object"] == "brand"
    # Every part as sent, colours in lower case.
    for field, value in body.items():
        if field != "colors":
            assert brand[field] == value, field
    assert brand["colors"] == {"primary": "#0a3d62", "secondary": "#f5f0e6", "accent": "#e58e26"}
    assert client.get(f"/v1/brands/{brand['id']}", headers=tenant.headers).json == brand

    second = client.post("/v1/brands", json={"name": "Plain"}, headers=tenant.headers).json
    assert second["colors"] == {"primary": None, "secondary": None, "accent": None}
    assert second["typography"] == {"heading_font": None, "body_font": None, "pairings": []}
    assert second["voice"] == {"mission": "", "vision": "", "values": [], "personality": ""}
    assert (second["personas"], second["mood_file_ids"], second["logo_file_id"]) == ([], [], None)

    page = client.get("/v1/brands?limit=1", headers=tenant.headers).json
    assert [b["id"] for b in page["data"]] == [second["id"]] and page["next_cursor"]
    rest = client.get(f"/v1/brands?limit=1&cursor={page['next_cursor']}", headers=tenant.headers).json
    assert [b["id"] for b in rest["data"]] == [brand["id"]] and rest["next_cursor"] is None

    # A change replaces what it sends; colours, typography and voice merge key by key.
    change = {"colors": {"accent": "#FF0000"}, "voice": {"values": ["speed"]}, "mood_file_ids": [images[2]]}
    r = client.patch(f"/v1/brands/{brand['id']}", json=change, headers=tenant.headers)
    assert r.status_code == 200, r.json
    changed = r.json
    assert changed["colors"] == {"primary": "#0a3d62", "secondary": "#f5f0e6", "accent": "#ff0000"}
    assert changed["voice"] == {**body["voice"], "values": ["speed"]}
    assert changed["mood_file_ids"] == [images[2]] and changed["logo_file_id"] == images[0]
    assert changed["updated_at"] >= brand["updated_at"] and changed["created_at"] == brand["created_at"]
    r = client.patch(f"/v1/brands/{brand['id']}", json={"logo_file_id": None}, headers=tenant.headers)
    assert r.json["logo_file_id"] is None

    assert client.delete(f"/v1/brands/{brand['id']}", headers=tenant.headers).status_code == 204
    r = client.get(f"/v1/brands/{brand['id']}", headers=tenant.headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "brand_not_found"
    # Its library files stay.
    assert client.get(f"/v1/files/{images[0]}", headers=tenant.headers).status_code == 200


def test_a_second_brand_of_the_same_name_is_refused(client, tenant):
    assert client.post("/v1/brands", json={"name": "Twin"}, headers=tenant.headers).status_code == 201
    r = client.post("/v1/brands", json={"name": "Twin"}, headers=tenant.headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "brand_name_taken"
    other = client.post("/v1/brands", json={"name": "Other"}, headers=tenant.headers).json
    r = client.patch(f"/v1/brands/{other['id']}", json={"name": "Twin"}, headers=tenant.headers)
    assert r.status_code == 409
    assert client.get(f"/v1/brands/{other['id']}", headers=tenant.headers).json["name"] == "Other"


REFUSED = [
    ({"tagline": "no name"}, "name", "invalid_request"),
    ({"name": "  "}, "name", "invalid_request"),
    ({"name": "x", "slogan": "typo"}, "slogan", "unknown_field"),
    ({"name": "x", "colors": {"tertiary": "#000000"}}, "colors.tertiary", "unknown_field"),
    ({"name": "x", "colors": {"primary": "red"}}, "colors.primary", "invalid_request"),
    ({"name": "x", "colors": {"accent": "#12345g"}}, "colors.accent", "invalid_request"),
    ({"name": "x", "colors": "#000000"}, "colors", "invalid_request"),
    ({"name": "x", "typography": {"heading_font": "Inter; color: red"}}, "typography.heading_font", "invalid_request"),
    ({"name": "x", "typography": {"pairings": [{"heading": "Inter"}]}}, "typography.pairings.0.body", "invalid_request"),
    ({"name": "x", "voice": {"values": ["ok", 7]}}, "voice.values.1", "invalid_request"),
    ({"name": "x", "voice": {"tone": "loud"}}, "voice.tone", "unknown_field"),
    ({"name": "x", "personas": [{"name": "A"}, {"role": "no name"}]}, "personas.1.name", "invalid_request"),
    ({"name": "x", "personas": [{"name": "A", "age": 30}]}, "personas.0.age", "unknown_field"),
    ({"name": "x", "audience": "half \ud800 a pair"}, "audience", "invalid_request"),
    ({"name": "x", "mood_file_ids": ["fil_a", "fil_a"]}, "mood_file_ids", "invalid_request"),
    ({"name": "x", "design_notes": "n" * 20001}, "design_notes", "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "code"), REFUSED)
def test_a_refused_brand_names_its_field_and_keeps_nothing(app, client, tenant, body, field, code):
    r = client.post("/v1/brands", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.json
    assert (r.json["error"]["field"], r.json["error"]["code"]) == (field, code), r.json
    assert count_brands(app, tenant.id) == 0
    if "name" not in body:
        return  # only a new brand needs a name
    # The same change to a brand that exists is refused the same way, and changes nothing.
    made = client.post("/v1/brands", json={"name": "Kept"}, headers=tenant.headers).json
    change = {k: v for k, v in body.items() if k != "name"} or body
    r = client.patch(f"/v1/brands/{made['id']}", json=change, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == field, r.json
    assert client.get(f"/v1/brands/{made['id']}", headers=tenant.headers).json == made


def test_logo_and_mood_images_are_the_tenants_own_library_images(app, client, make_tenant, png_image, wav):
    mine, theirs = make_tenant(), make_tenant()
    my_image = upload(client, mine, png_image).json["id"]
    my_sound = upload(client, mine, wav).json["id"]
    their_image = upload(client, theirs, png_image).json["id"]
    unknown = "fil_" + "0" * 24

    def refusal(body: dict[str, Any]) -> Any:
        r = client.post("/v1/brands", json={"name": "b", **body}, headers=mine.headers)
        assert r.status_code == 422
        return r.json["error"]

    # Another tenant's image answers exactly like one that does not exist.
    for field, wrap in (("logo_file_id", lambda f: f), ("mood_file_ids", lambda f: [my_image, f])):
        theirs_error = refusal({field: wrap(their_image)})
        unknown_error = refusal({field: wrap(unknown)})
        path = field if field == "logo_file_id" else "mood_file_ids.1"
        assert (
            theirs_error
            == unknown_error
            == {"code": "file_not_found", "message": "no such file", "field": path}
        )
        assert their_image not in json.dumps(theirs_error)
    assert refusal({"logo_file_id": my_sound}) == {
        "code": "not_an_image", "message": "this file is not an image", "field": "logo_file_id"
    }  # fmt: skip
    assert refusal({"mood_file_ids": [my_sound]})["field"] == "mood_file_ids.0"
    assert count_brands(app, mine.id) == 0
    made = client.post("/v1/brands", json={"name": "b", "logo_file_id": my_image}, headers=mine.headers).json
    r = client.patch(f"/v1/brands/{made['id']}", json={"logo_file_id": their_image}, headers=mine.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "file_not_found"
    assert client.get(f"/v1/brands/{made['id']}", headers=mine.headers).json["logo_file_id"] == my_image


def test_another_tenants_brand_answers_every_route_like_an_unknown_one(client, make_tenant):
    owner, stranger = make_tenant(), make_tenant()
    brand = client.post("/v1/brands", json=full_body(), headers=owner.headers).json
    unknown = "brd_" + "0" * 24
    calls = [
        ("GET", "/v1/brands/{}", None), ("GET", "/v1/brands/{}/export?format=md", None),
        ("GET", "/v1/brands/{}/export?format=json", None), ("PATCH", "/v1/brands/{}", {"name": "taken over"}),
        ("DELETE", "/v1/brands/{}", None),
    ]  # fmt: skip
    for method, path, body in calls:
        theirs = client.open(path.format(brand["id"]), method=method, json=body, headers=stranger.headers)
        none = client.open(path.format(unknown), method=method, json=body, headers=stranger.headers)
        assert theirs.status_code == none.status_code == 404, (method, path)
        assert theirs.json == none.json == {"error": {"code": "brand_not_found", "message": "no such brand"}}
    assert client.get("/v1/brands", headers=stranger.headers).json["data"] == []
    assert client.get(f"/v1/brands/{brand['id']}", headers=owner.headers).json == brand


def test_the_markdown_export_is_a_brand_book_with_every_section(client, tenant, png_image):
    logo = upload(client, tenant, png_image, name="northwind-logo.png").json["id"]
    mood = upload(client, tenant, png_image, name="harbour-dawn.png").json["id"]
    brand = client.post("/v1/brands", json=full_body(logo, [mood]), headers=tenant.headers).json
    r = client.get(f"/v1/brands/{brand['id']}/export?format=md", headers=tenant.headers)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="brand-northwind-coffee.md"'
    md = r.get_data(as_text=True)
    headings = re.findall(r"^(#+ .*)$", md, re.MULTILINE)
    assert headings == [
        "# Northwind Coffee", "## Logo", "## Colours", "## Typography", "### Font pairings",
        "## Brand voice", "### Mission", "### Vision", "### Values", "### Personality",
        "## Target audience", "## Buyer personas", "### Morning Maria (Ferry captain)", "## Mood images",
        "## Design system",
    ]  # fmt: skip
    for text in (
        "_Wake up to the sea_", "Small-batch roasters from the harbour.\nSince 1998.",
        f"northwind-logo.png (`{logo}`, image/png)", "| Primary | `#0a3d62` |", "| Secondary | `#f5f0e6` |",
        "| Accent | `#e58e26` |", "- Headings: Playfair Display", "- Body text: Inter",
        "- Playfair Display with Lora — print menus", "Honest coffee for early risers.",
        "A harbour cafe in every port town.", "- craft\n- warmth\n- honesty", "Calm, salty, friendly.",
        "Commuters and dock workers, 25 to 55.", "Up at four, wants it strong.", "- a hot cup before shift",
        "- queues\n- weak brews", f"- harbour-dawn.png (`{mood}`, image/png)",
        "Use 8 px spacing. Buttons are pill-shaped.",
    ):  # fmt: skip
        assert text in md, text
    # Text cannot make headings or HTML of its own.
    r = client.patch(
        f"/v1/brands/{brand['id']}", json={"tagline": "# <b>loud</b>", "audience": ""}, headers=tenant.headers
    )
    md = client.get(f"/v1/brands/{brand['id']}/export?format=md", headers=tenant.headers).get_data(
        as_text=True
    )
    assert "_\\# \\<b\\>loud\\</b\\>_" in md and "<b>" not in md
    assert "## Target audience\n\n_Not set._" in md


def test_the_json_export_is_the_whole_brand_with_its_files_named(client, tenant, png_image):
    logo = upload(client, tenant, png_image, name="logo.png").json["id"]
    moods = [upload(client, tenant, png_image, name=f"m{i}.png").json["id"] for i in range(2)]
    brand = client.post("/v1/brands", json=full_body(logo, moods), headers=tenant.headers).json
    r = client.get(f"/v1/brands/{brand['id']}/export", headers=tenant.headers)  # JSON by default
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Content-Disposition"] == 'attachment; filename="brand-northwind-coffee.json"'
    data = json.loads(r.get_data(as_text=True))
    assert {k: v for k, v in data.items() if k not in ("object", "exported_at", "logo", "mood_images")} == {
        k: v for k, v in brand.items() if k != "object"
    }
    assert data["object"] == "brand_export"
    assert data["logo"] == {
        "id": logo, "name": "logo.png", "content_type": "image/png", "url": f"/v1/files/{logo}/content",
        "missing": False,
    }  # fmt: skip
    assert [(m["id"], m["name"]) for m in data["mood_images"]] == [(moods[0], "m0.png"), (moods[1], "m1.png")]
    # A file deleted from the library since stays named by id, marked missing.
    assert client.delete(f"/v1/files/{moods[0]}", headers=tenant.headers).status_code == 204
    again = client.get(f"/v1/brands/{brand['id']}/export?format=json", headers=tenant.headers).json
    assert again["mood_images"][0] == {"id": moods[0], "name": None, "missing": True}
    md = client.get(f"/v1/brands/{brand['id']}/export?format=md", headers=tenant.headers).get_data(
        as_text=True
    )
    assert f"`{moods[0]}` (no longer in the library)" in md
    r = client.get(f"/v1/brands/{brand['id']}/export?format=pdf", headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "format"


# -- the pages ---------------------------------------------------------------------------------


def log_in(client: Any, handle: Any) -> None:
    r = client.post("/v1/session", json={"email": handle.email, "password": PASSWORD})
    assert r.status_code == 201


def test_the_brand_pages_answer_their_owner_and_are_not_found_pages_for_others(client, make_tenant):
    owner = make_tenant(password=PASSWORD)
    brand = client.post("/v1/brands", json=full_body(), headers=owner.headers).json
    for path in ("/brands", f"/brands/{brand['id']}"):
        r = client.get(path, headers=HTML)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=/brands"), path
    log_in(client, owner)
    token = client.get("/v1/session").json["csrf_token"]
    for path in ("/brands", f"/brands/{brand['id']}"):
        r = client.get(path, headers=HTML)
        assert r.status_code == 200, path
        page = r.get_data(as_text=True)
        assert f'<meta name="csrf-token" content="{token}">' in page
        assert 'href="/brands" aria-current="page"' in page
    editor = client.get(f"/brands/{brand['id']}", headers=HTML).get_data(as_text=True)
    assert f'data-brand-id="{brand["id"]}"' in editor and 'type="color"' in editor
    assert "Brand Northwind Coffee" in editor
    assert 'href="/brands"' in client.get("/jobs", headers=HTML).get_data(as_text=True)

    log_in(client, make_tenant(password=PASSWORD))
    for path in (f"/brands/{brand['id']}", "/brands/brd_nope", "/brands/" + "brd_" + "0" * 24):
        r = client.get(path, headers=HTML)
        assert r.status_code == 404, path
        body = r.get_data(as_text=True)
        assert "There is no such brand." in body and "Northwind" not in body
    assert client.get("/brands", headers=HTML).status_code == 200
