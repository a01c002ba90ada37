"""The JSON Schema of a project's body, and the checks a body passes before it is kept.

`BODY` is the one statement of what a project holds: ``POST /v1/projects`` and ``PATCH
/v1/projects/{id}`` are checked against it here and documented with it in the OpenAPI
document. Every object in it is closed: a field it does not name is refused as
``unknown_field`` with the field's path (``scenes[2].media.size``), like an unknown top-level
field (web/bodies.py). Any other refusal is ``invalid_request`` naming the field
(``scenes[0].duration``), or a code of its own for what the schema cannot say:

- ``invalid_media``: a scene's media is a library file (``file_id``) or a prompt
  (``prompt``, with ``kind`` and an optional ``model``), never both or neither;
- ``invalid_music``: the same for music (``file_id``, or ``prompt`` with an optional
  ``model``);
- ``duplicate_scene_id``: two scenes with one id;
- ``transition_too_long``: a transition lasts at least as long as a scene it joins.

Text may not hold NUL characters or unpaired surrogates (no database keeps them).

`normalized` turns a checked body's parts into the full shape every project is stored and
answered in: every key present, absent text empty, each scene with its id, duration and
transition.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from faktry.errors import ValidationError
from pipelines.brands.schema import FONT, HEX
from pipelines.media.ffmpeg import TRANSITIONS as FFMPEG_TRANSITIONS

MAX_NAME = 100
MAX_TEXT = 2000
MAX_IDEA = 5000
#: A narration is one speech job: its text limit.
MAX_SCRIPT = 5000
MAX_PROMPT = 4000
MAX_MUSIC_PROMPT = 2000
MAX_SCENES = 30
#: Frame size of each format; every render runs at `FPS`.
FORMATS: dict[str, tuple[int, int]] = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (1080, 1080)}
FPS = 30
DEFAULT_FORMAT = "9:16"
DEFAULT_TARGET_SECONDS = 30
DEFAULT_DURATION = 4.0
DEFAULT_MUSIC_VOLUME = 0.6
#: A transition that is not a cut lasts this long unless it says otherwise.
DEFAULT_TRANSITION_SECONDS = 0.5
TRANSITIONS = ("cut", *FFMPEG_TRANSITIONS)
MEDIA_KINDS = ("image", "video")
SCENE_ID = "^[A-Za-z0-9_-]{1,40}$"


def _closed(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def _text(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"\S"}
_FILE_ID = {"type": "string", "minLength": 1, "maxLength": 40, "description": "A file of your library."}
_MODEL = {"type": ["string", "null"], "maxLength": 100, "description": "A catalog model (GET /v1/models)."}
_VOLUME = {"type": "number", "minimum": 0, "maximum": 2}

CAPTION = _closed(
    {
        "font": {"type": ["string", "null"], "pattern": FONT, "description": "A font family."},
        "color": {"type": ["string", "null"], "pattern": HEX, "description": "Text colour, #rrggbb."},
        "outline": {"type": ["string", "null"], "pattern": HEX, "description": "Outline colour, #rrggbb."},
        "size": {"type": "integer", "minimum": 0, "maximum": 200, "description": "Pixels; 0 sizes by frame."},
        "burn": {"type": "boolean", "description": "Burn the captions into the picture."},
    },
    description="Caption style; each value set here wins over the brand's.",
)
STYLE = _closed({"notes": _text(MAX_TEXT, description="Free-text style notes."), "caption": CAPTION})
VOICE = _closed(
    {
        "model": _MODEL,
        "voice": {"type": ["string", "null"], "minLength": 1, "maxLength": 100},
    },
    description="The narrator: a speech.synthesize model and one of its voices.",
)
MUSIC = _closed(
    {
        "file_id": {**_FILE_ID, "description": "An audio file of your library."},
        "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_MUSIC_PROMPT, "pattern": r"\S"},
        "model": _MODEL,
        "volume": _VOLUME,
    },
    description="A library audio file (`file_id`), or music to generate (`prompt`, optional `model`).",
)
MEDIA = _closed(
    {
        "file_id": {**_FILE_ID, "description": "An image or video of your library."},
        "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT, "pattern": r"\S"},
        "kind": {"enum": list(MEDIA_KINDS), "description": "What the prompt generates (default image)."},
        "model": _MODEL,
    },
    description="A library file (`file_id`), or a picture or clip to generate (`prompt`, `kind`, `model`).",
)
TRANSITION = _closed(
    {
        "type": {"enum": list(TRANSITIONS)},
        "duration": {"type": "number", "minimum": 0, "maximum": 2},
    },
    ["type"],
    description="Into the next scene.",
)
SCENE = _closed(
    {
        "id": {"type": "string", "pattern": SCENE_ID, "description": "Given when left out."},
        "script": _text(MAX_SCRIPT, description="What the narrator says over the scene."),
        "media": _nullable(MEDIA),
        "duration": {"type": "number", "minimum": 0.5, "maximum": 120, "description": "Seconds (default 4)."},
        "transition": TRANSITION,
    }
)
#: The body of a project, every field optional here (``name`` is required to create one).
BODY = _closed(
    {
        "name": _NAME,
        "description": _text(MAX_TEXT),
        "idea": _text(MAX_IDEA, description="What the video is about."),
        "style": STYLE,
        "format": {"enum": list(FORMATS)},
        "target_seconds": {"type": "integer", "minimum": 1, "maximum": 3600},
        "brand_id": {
            "type": ["string", "null"],
            "maxLength": 40,
            "description": "One of your brands, or null.",
        },
        "voice": VOICE,
        "music": _nullable(MUSIC),
        "scenes": {"type": "array", "items": SCENE, "maxItems": MAX_SCENES},
    }
)
FIELDS = tuple(BODY["properties"])
#: The parts a PATCH merges key by key into what the project has; any other field is replaced.
MERGED = ("style", "voice")

_VALIDATOR = Draft202012Validator(BODY)


def path_of(parts: Iterable[str | int]) -> str:
    """A field's path as refusals name it: ``scenes[2].media.prompt``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check(body: dict[str, Any], *, creating: bool) -> None:
    """Refuse the body unless it matches `BODY` and the checks the schema cannot state (and has
    a ``name`` when ``creating``)."""
    errors = list(_VALIDATOR.iter_errors(body))
    if errors:
        # An unknown field is named before anything else: a typo explains the rest.
        errors.sort(key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
        raise _refusal(errors[0])
    _check_text(body, [])
    if creating and "name" not in body:
        raise ValidationError("a project needs a name", field="name")
    if "name" in body and not body["name"].strip().isprintable():
        raise ValidationError(f"name must be 1 to {MAX_NAME} printable characters", field="name")
    if body.get("music") is not None:
        _check_source(body["music"], "music", "invalid_music", ("model",))
    scenes = body.get("scenes", [])
    for index, scene in enumerate(scenes):
        if scene.get("media") is not None:
            _check_source(scene["media"], f"scenes[{index}].media", "invalid_media", ("kind", "model"))
    seen: set[str] = set()
    for index, scene in enumerate(scenes):
        if scene.get("id") in seen:
            raise ValidationError(
                f"another scene has the id {scene['id']!r}",
                field=f"scenes[{index}].id",
                code="duplicate_scene_id",
            )
        if "id" in scene:
            seen.add(scene["id"])
    _check_transitions(scenes)


def _check_source(value: dict[str, Any], path: str, code: str, prompt_only: tuple[str, ...]) -> None:
    if ("file_id" in value) == ("prompt" in value):
        raise ValidationError(
            f"{path} is a library file (file_id) or a prompt (prompt), one of the two", field=path, code=code
        )
    if "file_id" in value:
        for key in prompt_only:
            if key in value:
                raise ValidationError(
                    f"{key} goes with a prompt, not a library file", field=f"{path}.{key}", code=code
                )


def _check_transitions(scenes: list[dict[str, Any]]) -> None:
    """A transition overlaps the two scenes it joins: it must be shorter than both."""
    for index, (scene, following) in enumerate(itertools.pairwise(scenes)):
        transition = normalized_transition(scene.get("transition"))
        if transition["type"] == "cut":
            continue
        shortest = min(scene.get("duration", DEFAULT_DURATION), following.get("duration", DEFAULT_DURATION))
        if transition["duration"] >= shortest:
            raise ValidationError(
                f"the transition lasts {transition['duration']} s; it must be shorter than both scenes it "
                f"joins ({shortest} s)",
                field=f"scenes[{index}].transition.duration",
                code="transition_too_long",
            )


def _refusal(err: SchemaError) -> ValidationError:
    path = path_of(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        name = path_of([*err.absolute_path, *extra[:1]])
        return ValidationError(
            f"unknown field {name!r}; allowed here: {', '.join(allowed)}", field=name, code="unknown_field"
        )
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        name = path_of([*err.absolute_path, *missing[:1]])
        return ValidationError(f"{name} is required", field=name)
    if err.validator == "pattern" and isinstance(err.instance, str) and err.validator_value == HEX:
        return ValidationError(f"{path} must be a colour written #rrggbb", field=path)
    return ValidationError(f"{path or 'body'}: {err.message}"[:300], field=path or "body")


def _check_text(value: Any, parts: list[str | int]) -> None:
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            path = path_of(parts)
            raise ValidationError(f"{path} holds characters that cannot be kept", field=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(item, [*parts, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, [*parts, index])


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- the stored shape --------------------------------------------------------------------------


def normalized_transition(value: dict[str, Any] | None) -> dict[str, Any]:
    if not value or value.get("type", "cut") == "cut":
        return {"type": "cut", "duration": 0}
    return {"type": value["type"], "duration": value.get("duration", DEFAULT_TRANSITION_SECONDS)}


def normalized_media(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if "file_id" in value:
        return {"file_id": value["file_id"]}
    return {"prompt": value["prompt"], "kind": value.get("kind", "image"), "model": value.get("model")}


def normalized_scene(scene: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": scene.get("id") or new_scene_id(),
        "script": scene.get("script", ""),
        "media": normalized_media(scene.get("media")),
        "duration": scene.get("duration", DEFAULT_DURATION),
        "transition": normalized_transition(scene.get("transition")),
    }


def new_scene_id() -> str:
    return f"scn_{secrets.token_hex(6)}"


def normalized(field: str, value: Any) -> Any:
    """A checked field's value in its stored shape."""
    if field == "style":
        caption = value.get("caption", {})
        return {
            "notes": value.get("notes", ""),
            "caption": {
                "font": caption.get("font"),
                "color": (caption.get("color") or None) and caption["color"].lower(),
                "outline": (caption.get("outline") or None) and caption["outline"].lower(),
                "size": caption.get("size", 0),
                "burn": caption.get("burn", True),
            },
        }
    if field == "voice":
        return {"model": value.get("model"), "voice": value.get("voice")}
    if field == "music":
        if value is None:
            return None
        volume = value.get("volume", DEFAULT_MUSIC_VOLUME)
        if "file_id" in value:
            return {"file_id": value["file_id"], "volume": volume}
        return {"prompt": value["prompt"], "model": value.get("model"), "volume": volume}
    if field == "scenes":
        return [normalized_scene(scene) for scene in value]
    if field == "name":
        return value.strip()
    return value
