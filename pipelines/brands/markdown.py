"""A brand guideline as a Markdown document (the export archive's ``brands/<id>.md``).

Everything `store.to_dict` holds is in it, in the order a designer reads a guideline: name
and tagline, description, colours, typography, voice, audience, personas, design notes, and
the library files it points at by id. Empty parts are left out. Text a person typed is
written as it is, except that a line starting with ``#`` cannot become a heading.
"""

from __future__ import annotations

from typing import Any


def to_markdown(brand: dict[str, Any]) -> str:
    out: list[str] = [f"# {_line(brand['name'])}", ""]
    if brand.get("tagline"):
        out += [f"*{_line(brand['tagline'])}*", ""]
    if brand.get("description"):
        out += [_block(brand["description"]), ""]
    colors = {role: value for role, value in (brand.get("colors") or {}).items() if value}
    if colors:
        out += ["## Colours", ""]
        out += [f"- {role.capitalize()}: `{value}`" for role, value in colors.items()]
        out.append("")
    out += _typography(brand.get("typography") or {})
    out += _voice(brand.get("voice") or {})
    if brand.get("audience"):
        out += ["## Audience", "", _block(brand["audience"]), ""]
    for index, persona in enumerate(brand.get("personas") or []):
        if index == 0:
            out += ["## Personas", ""]
        out += _persona(persona)
    if brand.get("design_notes"):
        out += ["## Design notes", "", _block(brand["design_notes"]), ""]
    files = ([f"- Logo: `{brand['logo_file_id']}`"] if brand.get("logo_file_id") else []) + [
        f"- Mood image: `{file_id}`" for file_id in brand.get("mood_file_ids") or []
    ]
    if files:
        out += ["## Images", "", "Library files, by id (in the archive under `media/<id>/`).", "", *files, ""]
    out += [f"Created {brand['created_at']}, last changed {brand['updated_at']}.", ""]
    return "\n".join(out)


def _typography(typography: dict[str, Any]) -> list[str]:
    lines = []
    if typography.get("heading_font"):
        lines.append(f"- Headings: {typography['heading_font']}")
    if typography.get("body_font"):
        lines.append(f"- Body: {typography['body_font']}")
    for pairing in typography.get("pairings") or []:
        use = f" ({_line(pairing['use'])})" if pairing.get("use") else ""
        lines.append(f"- Pairing: {pairing['heading']} with {pairing['body']}{use}")
    return ["## Typography", "", *lines, ""] if lines else []


def _voice(voice: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for part in ("mission", "vision", "personality"):
        if voice.get(part):
            lines += [f"### {part.capitalize()}", "", _block(voice[part]), ""]
    if voice.get("values"):
        lines += ["### Values", "", *(f"- {_line(v)}" for v in voice["values"]), ""]
    return ["## Voice", "", *lines] if lines else []


def _persona(persona: dict[str, Any]) -> list[str]:
    role = f", {_line(persona['role'])}" if persona.get("role") else ""
    lines = [f"### {_line(persona['name'])}{role}", ""]
    if persona.get("description"):
        lines += [_block(persona["description"]), ""]
    for part, title in (("goals", "Goals"), ("pain_points", "Pain points")):
        if persona.get(part):
            lines += [f"{title}:", "", *(f"- {_line(item)}" for item in persona[part]), ""]
    return lines


def _line(text: str) -> str:
    """One line of text: line breaks become spaces."""
    return " ".join(str(text).split())


def _block(text: str) -> str:
    """A paragraph a person typed, kept as typed; a line that would read as a heading is escaped."""
    lines = str(text).splitlines()
    return "\n".join("\\" + line if line.lstrip().startswith("#") else line for line in lines)
