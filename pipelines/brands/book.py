"""One brand written out: a Markdown brand book for people, a JSON document for programs.

Both hold every section of the brand. Files are named, not only numbered: the logo and each
mood image come with their file name, type and download path in the library; a file that
has been deleted from the library since is kept by id and marked ``missing``.
"""

from __future__ import annotations

import re
from typing import Any

from faktry import clock
from pipelines.brands.models import Brand
from pipelines.brands.store import to_dict
from storage.models import File


def file_ref(file_id: str, found: dict[str, File]) -> dict[str, Any]:
    row = found.get(file_id)
    if row is None:
        return {"id": file_id, "name": None, "missing": True}
    return {
        "id": row.id,
        "name": row.filename or row.id,
        "content_type": row.content_type,
        "url": f"/v1/files/{row.id}/content",
        "missing": False,
    }


def to_json(brand: Brand, found: dict[str, File]) -> dict[str, Any]:
    """The whole brand, with its files resolved to names."""
    return {
        **to_dict(brand),
        "object": "brand_export",
        "exported_at": clock.now().isoformat(),
        "logo": file_ref(brand.logo_file_id, found) if brand.logo_file_id else None,
        "mood_images": [file_ref(file_id, found) for file_id in brand.mood_file_ids],
    }


def filename(brand: Brand, ext: str) -> str:
    """``brand-<name>.<ext>``, in characters every Content-Disposition reader takes."""
    slug = re.sub(r"[^a-z0-9]+", "-", brand.name.lower()).strip("-")[:60] or brand.id
    return f"brand-{slug}.{ext}"


def _line(text: str) -> str:
    """One line of text: Markdown sees no heading, list or HTML it did not mean."""
    flat = " ".join(text.split())
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", flat)


def _para(text: str) -> str:
    return "\n".join(_line(line) for line in text.splitlines()) if text.strip() else "_Not set._"


def _file_line(ref: dict[str, Any]) -> str:
    if ref["missing"]:
        return f"`{ref['id']}` (no longer in the library)"
    return f"{_line(ref['name'])} (`{ref['id']}`, {ref['content_type']})"


def to_markdown(brand: Brand, found: dict[str, File]) -> str:
    """A readable brand book, one section per part of the brand."""
    data = to_json(brand, found)
    out: list[str] = [f"# {_line(brand.name)}", ""]
    if brand.tagline:
        out += [f"_{_line(brand.tagline)}_", ""]
    out += [_para(brand.description), ""]

    out += ["## Logo", "", _file_line(data["logo"]) if data["logo"] else "_Not set._", ""]

    out += ["## Colours", "", "| Role | Colour |", "| --- | --- |"]
    for role, value in brand.colors.items():
        out.append(f"| {role.capitalize()} | {f'`{value}`' if value else 'not set'} |")
    out.append("")

    typo = brand.typography
    out += [
        "## Typography",
        "",
        f"- Headings: {_line(typo.get('heading_font') or 'not set')}",
        f"- Body text: {_line(typo.get('body_font') or 'not set')}",
        "",
        "### Font pairings",
        "",
    ]
    pairings = typo.get("pairings") or []
    for p in pairings:
        use = f" — {_line(p['use'])}" if p.get("use") else ""
        out.append(f"- {_line(p['heading'])} with {_line(p['body'])}{use}")
    out += ["_None._"] if not pairings else []
    out.append("")

    voice = brand.voice
    out += ["## Brand voice", "", "### Mission", "", _para(voice.get("mission", "")), ""]
    out += ["### Vision", "", _para(voice.get("vision", "")), "", "### Values", ""]
    out += [f"- {_line(v)}" for v in voice.get("values", [])] or ["_None._"]
    out += ["", "### Personality", "", _para(voice.get("personality", "")), ""]

    out += ["## Target audience", "", _para(brand.audience), "", "## Buyer personas", ""]
    for persona in brand.personas:
        role = f" ({_line(persona['role'])})" if persona.get("role") else ""
        out += [f"### {_line(persona['name'])}{role}", "", _para(persona.get("description", "")), ""]
        for title, key in (("Goals", "goals"), ("Pain points", "pain_points")):
            if persona.get(key):
                out += [f"{title}:", "", *[f"- {_line(item)}" for item in persona[key]], ""]
    if not brand.personas:
        out += ["_None._", ""]

    out += ["## Mood images", ""]
    out += [f"- {_file_line(ref)}" for ref in data["mood_images"]] or ["_None._"]
    out += ["", "## Design system", "", _para(brand.design_notes), ""]
    out += ["---", "", f"Exported from faktry on {data['exported_at']} (brand `{brand.id}`).", ""]
    return "\n".join(out)
