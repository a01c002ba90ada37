"""The JSON Schema of a brand's body, and the checks a body passes before it is kept.

`BODY` is the one statement of what a brand holds: ``POST /v1/brands`` and ``PATCH
/v1/brands/{id}`` are checked against it here and documented with it in the OpenAPI
document. Every object in it is closed: a field it does not name is refused as
``unknown_field`` with the field's path (``colors.tertiary``), like an unknown top-level
field (web/bodies.py). Any other refusal is ``invalid_request`` naming the field
(``personas.1.name``). Text may not hold NUL characters or unpaired surrogates (no database
keeps them); names and font families must be printable.

`normalized` turns a checked body's parts into the full shape every brand is stored and
answered in: every key present, colours in lower case, absent text empty, absent lists empty.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from faktry.errors import ValidationError

MAX_NAME = 100
MAX_TAGLINE = 200
MAX_TEXT = 2000
MAX_NOTES = 20000
MAX_ITEMS = 20
MAX_PERSONAS = 10
MAX_PAIRINGS = 10
#: A colour: ``#rrggbb``.
HEX = "^#[0-9a-fA-F]{6}$"
#: A font family's name, as CSS and caption renderers take it without quoting trouble.
FONT = "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$"
COLOR_ROLES = ("primary", "secondary", "accent")


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _text(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


def _list(item: dict[str, Any], max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": max_items}


_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"\S"}
_FONT = {"type": ["string", "null"], "pattern": FONT, "description": "A font family, e.g. `Inter`."}
_FILE_ID = {"type": "string", "minLength": 1, "maxLength": 40}

COLORS = _closed(
    {role: {"type": ["string", "null"], "pattern": HEX, "examples": ["#1a2b3c"]} for role in COLOR_ROLES}
)
PAIRING = _closed(
    {
        "heading": {**_FONT, "type": "string"},
        "body": {**_FONT, "type": "string"},
        "use": _text(MAX_TAGLINE, description="Where the pairing is used."),
    },
    ["heading", "body"],
)
TYPOGRAPHY = _closed({"heading_font": _FONT, "body_font": _FONT, "pairings": _list(PAIRING, MAX_PAIRINGS)})
VOICE = _closed(
    {
        "mission": _text(MAX_TEXT),
        "vision": _text(MAX_TEXT),
        "values": _list(_text(MAX_NAME, minLength=1), MAX_ITEMS),
        "personality": _text(MAX_TEXT),
    }
)
PERSONA = _closed(
    {
        "name": _NAME,
        "role": _text(MAX_NAME),
        "description": _text(MAX_TEXT),
        "goals": _list(_text(MAX_TAGLINE, minLength=1), MAX_ITEMS),
        "pain_points": _list(_text(MAX_TAGLINE, minLength=1), MAX_ITEMS),
    },
    ["name"],
)
#: The body of a brand, every field optional here (``name`` is required to create one).
BODY = _closed(
    {
        "name": _NAME,
        "description": _text(MAX_TEXT),
        "tagline": _text(MAX_TAGLINE),
        "logo_file_id": {**_FILE_ID, "type": ["string", "null"], "description": "A library image, or null."},
        "colors": COLORS,
        "typography": TYPOGRAPHY,
        "voice": VOICE,
        "audience": _text(MAX_TEXT, description="Who the brand speaks to."),
        "personas": _list(PERSONA, MAX_PERSONAS),
        "mood_file_ids": {
            **_list(_FILE_ID, MAX_ITEMS),
            "uniqueItems": True,
            "description": "Library images.",
        },
        "design_notes": _text(
            MAX_NOTES, description="Design-system notes: spacing, components, do's and don'ts."
        ),
    }
)
FIELDS = tuple(BODY["properties"])
#: The parts a PATCH merges key by key into what the brand has; any other field is replaced.
MERGED = ("colors", "typography", "voice")

_VALIDATOR = Draft202012Validator(BODY)


def check(body: dict[str, Any], *, creating: bool) -> None:
    """Refuse the body unless it matches `BODY` (and has a ``name`` when ``creating``)."""
    errors = list(_VALIDATOR.iter_errors(body))
    if errors:
        # An unknown field is named before anything else: a typo explains the rest.
        errors.sort(key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
        raise _refusal(errors[0])
    _check_text(body, "")
    if creating and "name" not in body:
        raise ValidationError("a brand needs a name", field="name")
    if "name" in body and not body["name"].strip().isprintable():
        raise ValidationError(f"name must be 1 to {MAX_NAME} printable characters", field="name")


def _refusal(err: SchemaError) -> ValidationError:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        name = ".".join(filter(None, [path, extra[0] if extra else ""]))
        return ValidationError(
            f"unknown field {name!r}; allowed here: {', '.join(allowed)}", field=name, code="unknown_field"
        )
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        name = ".".join(filter(None, [path, missing[0] if missing else ""]))
        return ValidationError(f"{name} is required", field=name)
    if err.validator == "pattern" and path.startswith("colors."):
        return ValidationError(f"{path} must be a colour written #rrggbb", field=path)
    return ValidationError(f"{path or 'body'}: {err.message}"[:300], field=path or "body")


def _check_text(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            raise ValidationError(f"{path} holds characters that cannot be kept", field=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{path}.{index}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalized(field: str, value: Any) -> Any:
    """A checked field's value in its stored shape."""
    if field == "colors":
        return {role: (value.get(role) or None) and value[role].lower() for role in COLOR_ROLES}
    if field == "typography":
        return {
            "heading_font": value.get("heading_font"),
            "body_font": value.get("body_font"),
            "pairings": [
                {"heading": p["heading"], "body": p["body"], "use": p.get("use", "")}
                for p in value.get("pairings", [])
            ],
        }
    if field == "voice":
        return {
            "mission": value.get("mission", ""),
            "vision": value.get("vision", ""),
            "values": list(value.get("values", [])),
            "personality": value.get("personality", ""),
        }
    if field == "personas":
        return [
            {
                "name": p["name"].strip(),
                "role": p.get("role", ""),
                "description": p.get("description", ""),
                "goals": list(p.get("goals", [])),
                "pain_points": list(p.get("pain_points", [])),
            }
            for p in value
        ]
    if field == "name":
        return value.strip()
    if field == "mood_file_ids":
        return list(value)
    return value
