"""The timeline document: what `video.render` makes into one MP4 (docs/timeline.md).

A timeline names its files by index into the render job's ``input.file_ids``, so it is
self-contained: the same document renders the same video from the same files. This module
holds its JSON Schema (`TIMELINE_SCHEMA`, published as docs/timeline.schema.json), the checks a
schema cannot say (`check`), the length a quote prices (`stated_seconds`), and the plan a
render follows once each file's real length is known (`resolve`). It runs no tool.

Outcomes:
- a document that breaks the schema or a rule: `ValidationError` with a stable ``code`` and the
  full JSON path of the offending value as ``field`` (``params.timeline.video[1].out``);
- a document that is fine as written but not with the files it is given (a transition longer
  than a video clip turns out to be, a trim past a file's end): `InvalidMedia` when the render
  resolves it, code ``clip_too_short``;
- otherwise a `Plan`: every clip placed on a frame-exact clock, the captions cut into cues.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match

from faktry.errors import InvalidMedia, ValidationError
from pipelines.media.ffmpeg import CORNERS, TRANSITIONS
from pipelines.media.subtitles import COLOR, CUE_CHARS, FONT_FAMILY, Cue, split_text, spread

#: Where a render job's timeline sits in its request.
WHERE = "params.timeline"
#: Clips a timeline holds at most.
MAX_VIDEO_CLIPS = 60
MAX_AUDIO_CLIPS = 80
MAX_TEXTS = 50
#: Files a render job takes at most (``input.file_ids``).
MAX_FILES = 80
#: What a clip that holds for its narration adds after the narration ends, in seconds.
HOLD_TAIL = 0.3
#: How much a still with ``pan_zoom`` motion zooms in over its length.
PAN_ZOOM = 0.12
#: Transition types: a cut, or one of the crossfades `video.concat` offers.
TRANSITION_TYPES = ("cut", *TRANSITIONS)
#: What a file may be, by where the timeline uses it.
VIDEO_SOURCES = frozenset({"image", "video"})
AUDIO_SOURCES = frozenset({"audio", "video"})
LOGO_SOURCES = frozenset({"image"})

_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$", "description": "A name other clips refer to."}
_FILE = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_FILES - 1,
    "description": "Index of the file in the render job's input.file_ids.",
}
_SECONDS = {"type": "number", "minimum": 0, "maximum": 86400}


def _obj(properties: dict[str, Any], required: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, **extra}


_VIDEO_CLIP = _obj(
    {
        "id": _ID,
        "file": {**_FILE, "description": "An image (a still) or a video: index in input.file_ids."},
        "duration": {
            "type": "number",
            "minimum": 0.5,
            "maximum": 120,
            "description": "Seconds on screen: required for a still; for a video, by default out - in "
            "(longer: its last frame holds; shorter: it is cut).",
        },
        "in": {**_SECONDS, "description": "Video only: where in the file the clip starts (default 0)."},
        "out": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 86400,
            "description": "Video only: where in the file the clip ends (default its end).",
        },
        "motion": {
            "type": "string",
            "enum": ["pan_zoom", "none"],
            "default": "pan_zoom",
            "description": "Stills only: pan_zoom, a slow zoom in with a slight pan; none, still.",
        },
        "fit": {
            "type": "string",
            "enum": ["crop", "pad"],
            "default": "crop",
            "description": "crop: fill the frame, cutting what sticks out; pad: all of the picture, "
            "with black bars.",
        },
        "hold_for": {
            **_ID,
            "description": "The id of an audio clip (a narration): this clip lasts at least until that "
            "audio ends, plus 0.3 s, plus its transition out.",
        },
        "transition": _obj(
            {
                "type": {"type": "string", "enum": list(TRANSITION_TYPES), "default": "cut"},
                "duration": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 2,
                    "default": 0.5,
                    "description": "Seconds the two clips overlap (a cut has none); shorter than both.",
                },
            },
            ["type"],
            description="Into the next clip; the last clip's is not used.",
        ),
    },
    ["file"],
)

_AT = {
    "description": "When the audio starts: seconds from the start of the video, or a video clip's "
    "start plus an offset.",
    "anyOf": [
        _SECONDS,
        _obj(
            {
                "clip": {**_ID, "description": "The id of a video clip."},
                "offset": {**_SECONDS, "default": 0, "description": "Seconds after the clip starts."},
            },
            ["clip"],
        ),
    ],
}

_AUDIO_CLIP = _obj(
    {
        "id": _ID,
        "file": {**_FILE, "description": "An audio file, or a video whose sound is used."},
        "role": {
            "type": "string",
            "enum": ["narration", "music", "effect"],
            "description": "Narration drives captions and ducks the music; music loops to the end.",
        },
        "at": {**_AT, "default": 0},
        "in": {**_SECONDS, "description": "Where in the file the audio starts (default 0)."},
        "out": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 86400,
            "description": "Where in the file the audio ends (default its end).",
        },
        "volume": {"type": "number", "minimum": 0, "maximum": 2, "default": 1},
        "loop": {
            "type": "boolean",
            "description": "Play again from `in` until the video ends; by default true for music only.",
        },
        "duck": {
            "type": "boolean",
            "default": True,
            "description": "Music only: lowered while narration plays.",
        },
        "text": {
            "type": "string",
            "maxLength": 5000,
            "description": "Narration only: what it says, for the captions.",
        },
    },
    ["file", "role"],
)

_TEXT = _obj(
    {
        "text": {"type": "string", "minLength": 1, "maxLength": 300},
        "start": _SECONDS,
        "end": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
        "position": {"type": "string", "enum": ["top", "center", "bottom"], "default": "top"},
    },
    ["text", "start", "end"],
)

#: The timeline's JSON Schema (Draft 2020-12); docs/timeline.schema.json is `document()`.
TIMELINE_SCHEMA: dict[str, Any] = _obj(
    {
        "version": {"const": 1},
        "format": _obj(
            {
                "width": {"type": "integer", "minimum": 16, "maximum": 3840, "multipleOf": 2},
                "height": {"type": "integer", "minimum": 16, "maximum": 3840, "multipleOf": 2},
                "fps": {"type": "integer", "minimum": 1, "maximum": 60, "default": 30},
            },
            ["width", "height"],
        ),
        "video": {
            "type": "array",
            "items": _VIDEO_CLIP,
            "minItems": 1,
            "maxItems": MAX_VIDEO_CLIPS,
            "description": "The picture: clips played one after another.",
        },
        "audio": {
            "type": "array",
            "items": _AUDIO_CLIP,
            "maxItems": MAX_AUDIO_CLIPS,
            "default": [],
            "description": "Sound placed on the timeline, mixed together.",
        },
        "text": {
            "type": "array",
            "items": _TEXT,
            "maxItems": MAX_TEXTS,
            "default": [],
            "description": "Titles drawn over the picture between start and end seconds.",
        },
        "captions": _obj(
            {
                "from": {"type": "string", "enum": ["narration", "none"], "default": "narration"},
                "burn": {"type": "boolean", "default": True, "description": "Draw them on the picture."},
                "srt": {
                    "type": "boolean",
                    "default": True,
                    "description": "Also write them as captions.srt, the render's second output.",
                },
                "max_chars": {"type": "integer", "minimum": 10, "maximum": 120, "default": CUE_CHARS},
            },
        ),
        "style": _obj(
            {
                "font": {"type": "string", "pattern": FONT_FAMILY.pattern, "default": "DejaVu Sans"},
                "color": {"type": "string", "pattern": COLOR.pattern, "default": "#FFFFFF"},
                "outline": {"type": "string", "pattern": COLOR.pattern, "default": "#000000"},
                "size": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 300,
                    "default": 0,
                    "description": "Caption size in pixels; 0: by the frame (1/18 of its shorter side).",
                },
            },
            description="How captions and titles look.",
        ),
        "loudness": _obj(
            {
                "target_lufs": {
                    "type": "number",
                    "minimum": -70,
                    "maximum": -5,
                    "default": -14,
                    "description": "Integrated loudness of the final mix, in LUFS.",
                }
            }
        ),
        "watermark": _obj(
            {
                "file": {**_FILE, "description": "An image: index in input.file_ids."},
                "corner": {"type": "string", "enum": list(CORNERS), "default": "bottom_right"},
                "margin": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 24},
                "opacity": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.85},
                "width": {
                    "type": "number",
                    "minimum": 0.02,
                    "maximum": 1,
                    "default": 0.18,
                    "description": "The logo's width as a fraction of the frame's.",
                },
            },
            ["file"],
        ),
    },
    ["version", "format", "video"],
    description="A video to render: files named by index into the job's input.file_ids (docs/timeline.md).",
)

_VALIDATOR = Draft202012Validator(TIMELINE_SCHEMA)


def document() -> dict[str, Any]:
    """The schema as a standalone JSON Schema document (docs/timeline.schema.json)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "faktry timeline",
        **copy.deepcopy(TIMELINE_SCHEMA),
    }


# -- checks ---------------------------------------------------------------------------------------


def path(where: str, *parts: str | int) -> str:
    """A JSON path: ``path("params.timeline", "video", 1, "out")`` is
    ``params.timeline.video[1].out``."""
    out = where
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _schema_error(err: SchemaError, where: str) -> ValidationError:
    if err.context:  # one of several shapes (``at``): the shape of the value's own type says most
        shaped = [e for e in err.context if e.validator != "type"]
        err = best_match(shaped or err.context)
    at = path(where, *err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        field = path(at, extra[0]) if extra else at
        return ValidationError(
            f"unknown field {field!r}; allowed: {', '.join(allowed)}", field=field, code="unknown_field"
        )
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [name for name in err.validator_value if name not in err.instance]
        field = path(at, missing[0]) if missing else at
        return ValidationError(f"missing required field {field!r}", field=field)
    return ValidationError(f"{at}: {err.message}", field=at)


def validate(timeline: Any, *, where: str = WHERE) -> dict[str, Any]:
    """`timeline` if it keeps the schema and the rules `check` can see without the files; else
    the first problem, as `ValidationError` naming its JSON path under `where`."""
    if not isinstance(timeline, dict):
        raise ValidationError(f"{where} must be an object", field=where)
    errors = sorted(_VALIDATOR.iter_errors(timeline), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise _schema_error(errors[0], where)
    check(timeline, where=where)
    return timeline


def _written_seconds(clip: dict[str, Any]) -> float | None:
    """A video clip's length as written: its duration, else out - in; None until the file's
    length is known."""
    if "duration" in clip:
        return float(clip["duration"])
    if "out" in clip:
        return float(clip["out"]) - float(clip.get("in", 0))
    return None


def _transition(clip: dict[str, Any]) -> tuple[str, float]:
    given = clip.get("transition") or {}
    kind = given.get("type", "cut")
    return kind, 0.0 if kind == "cut" else float(given.get("duration", 0.5))


def check(timeline: dict[str, Any], *, kinds: Sequence[str | None] | None = None, where: str = WHERE) -> None:
    """The rules of a schema-valid timeline that its schema cannot say, given the kinds of the
    job's files in order when they are known (``kinds``; an item None when only that file's kind
    is unknown, as in a workflow graph before it runs). Raises the first `ValidationError`:

    - ``file_out_of_range``: a ``file`` index past the end of ``input.file_ids``;
    - ``unsupported_input``: a file of a kind that place does not take (a still or video for
      the picture, audio or a video for sound, an image for the watermark);
    - ``duration_required``: a still without ``duration``; ``trim_needs_video``: ``in``/``out``
      on a still;
    - ``duplicate_id``; ``unknown_clip``: a ``hold_for`` naming no audio clip, an ``at.clip``
      naming no video clip; ``circular_hold``: a clip holding for audio placed by a later clip;
    - ``invalid_range``: ``in`` not before ``out``, a text's ``end`` not after its ``start``;
    - ``not_for_role``: ``text`` on audio that is not narration, ``duck`` on audio not music;
    - ``transition_too_long``: a transition not shorter than both clips it joins, where their
      lengths are written down.
    """
    video = timeline["video"]
    audio = timeline.get("audio", [])

    def file_of(parts: tuple[str | int, ...], index: int, allowed: frozenset[str], what: str) -> str | None:
        if kinds is None:
            return None
        field = path(where, *parts, "file")
        if index >= len(kinds):
            raise ValidationError(
                f"{field} is {index}, but input.file_ids has {len(kinds)} files",
                field=field,
                code="file_out_of_range",
            )
        kind = kinds[index]
        if kind is not None and kind not in allowed:
            raise ValidationError(
                f"{field} names a {kind} file; {what} takes {' or '.join(sorted(allowed))}",
                field=field,
                code="unsupported_input",
            )
        return kind

    seen: set[str] = set()
    for parts, clip in [(("video", i), c) for i, c in enumerate(video)] + [
        (("audio", i), c) for i, c in enumerate(audio)
    ]:
        name = clip.get("id")
        if name is None:
            continue
        if name in seen:
            raise ValidationError(
                f"another clip is already called {name!r}",
                field=path(where, *parts, "id"),
                code="duplicate_id",
            )
        seen.add(name)
    video_ids = {c["id"]: i for i, c in enumerate(video) if "id" in c}
    audio_ids = {c["id"]: i for i, c in enumerate(audio) if "id" in c}

    for i, clip in enumerate(video):
        kind = file_of(("video", i), clip["file"], VIDEO_SOURCES, "a video clip")
        if kind == "image":
            if "duration" not in clip:
                raise ValidationError(
                    "a still needs a duration in seconds",
                    field=path(where, "video", i, "duration"),
                    code="duration_required",
                )
            for bound in ("in", "out"):
                if bound in clip:
                    raise ValidationError(
                        f"{bound} trims a video; file {clip['file']} is a still",
                        field=path(where, "video", i, bound),
                        code="trim_needs_video",
                    )
        _check_range(clip, where, ("video", i))
        held = clip.get("hold_for")
        if held is not None:
            if held not in audio_ids:
                raise ValidationError(
                    f"no audio clip is called {held!r}",
                    field=path(where, "video", i, "hold_for"),
                    code="unknown_clip",
                )
            anchor = audio[audio_ids[held]].get("at", 0)
            if isinstance(anchor, dict) and video_ids.get(anchor["clip"], -1) > i:
                raise ValidationError(
                    f"{held!r} starts with a later clip, whose start depends on this clip's length",
                    field=path(where, "video", i, "hold_for"),
                    code="circular_hold",
                )

    for i, clip in enumerate(audio):
        file_of(("audio", i), clip["file"], AUDIO_SOURCES, "an audio clip")
        anchor = clip.get("at", 0)
        if isinstance(anchor, dict) and anchor["clip"] not in video_ids:
            raise ValidationError(
                f"no video clip is called {anchor['clip']!r}",
                field=path(where, "audio", i, "at", "clip"),
                code="unknown_clip",
            )
        _check_range(clip, where, ("audio", i))
        if "text" in clip and clip["role"] != "narration":
            raise ValidationError(
                "only narration has text", field=path(where, "audio", i, "text"), code="not_for_role"
            )
        if "duck" in clip and clip["role"] != "music":
            raise ValidationError(
                "only music is ducked", field=path(where, "audio", i, "duck"), code="not_for_role"
            )

    for i, text in enumerate(timeline.get("text", [])):
        if text["end"] <= text["start"]:
            raise ValidationError(
                f"end ({text['end']}) must be after start ({text['start']})",
                field=path(where, "text", i, "end"),
                code="invalid_range",
            )

    if "watermark" in timeline:
        file_of(("watermark",), timeline["watermark"]["file"], LOGO_SOURCES, "the watermark")

    for i in range(len(video) - 1):
        kind, seconds = _transition(video[i])
        if kind == "cut":
            continue
        for j in (i, i + 1):
            length = _written_seconds(video[j])
            if length is not None and seconds >= length:
                raise ValidationError(
                    f"the {seconds:g} s transition must be shorter than both clips it joins; "
                    f"video[{j}] lasts {length:g} s",
                    field=path(where, "video", i, "transition", "duration"),
                    code="transition_too_long",
                )


def _check_range(clip: dict[str, Any], where: str, parts: tuple[str | int, ...]) -> None:
    if "out" in clip and clip["out"] <= clip.get("in", 0):
        raise ValidationError(
            f"out ({clip['out']}) must be after in ({clip.get('in', 0)})",
            field=path(where, *parts, "out"),
            code="invalid_range",
        )


def stated_seconds(timeline: dict[str, Any], file_seconds: Sequence[float | None] = ()) -> float:
    """The video's length as the timeline writes it: each clip's length before any ``hold_for``
    lengthens it, less the transitions. A video clip that gives neither ``duration`` nor ``out``
    counts its file's length from ``in`` when `file_seconds` (by file index) knows it, else
    nothing. A quote prices this length; a render that turns out longer is never charged more."""
    video = timeline.get("video") or []
    total = 0.0
    for i, clip in enumerate(video):
        length = _written_seconds(clip)
        if length is None:
            index = clip.get("file", -1)
            known = file_seconds[index] if 0 <= index < len(file_seconds) else None
            length = max(0.0, float(known) - float(clip.get("in", 0))) if known else 0.0
        total += length
        if i < len(video) - 1:
            total -= _transition(clip)[1]
    return round(max(0.0, total), 3)


# -- resolution -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What a render knows of one of its files: its kind, how long its picture lasts (a video)
    and how long its sound lasts (audio, or a video's audio; None: it has none)."""

    kind: str
    picture_seconds: float | None = None
    audio_seconds: float | None = None


@dataclass(frozen=True)
class VideoSpan:
    """A video clip placed: ``start`` and ``seconds`` on the output's clock (whole frames);
    from a video, ``source_seconds`` of it from ``source_in`` (the rest holds its last frame)."""

    index: int
    id: str | None
    file: int
    kind: str
    start: float
    seconds: float
    frames: int
    source_in: float
    source_seconds: float
    fit: str
    motion: str
    #: Into the next clip: its type (``cut`` for none) and its frames.
    transition: str
    transition_frames: int


@dataclass(frozen=True)
class AudioSpan:
    """An audio clip placed: plays from ``start`` for ``seconds``, ``source_seconds`` of its file
    from ``source_in``, looped when ``loop`` and the span is longer."""

    index: int
    id: str | None
    file: int
    role: str
    start: float
    seconds: float
    source_in: float
    source_seconds: float
    volume: float
    loop: bool
    duck: bool
    text: str
    #: The pass is the whole file (a loop can replay the file itself).
    whole: bool


@dataclass(frozen=True)
class Overlay:
    text: str
    start: float
    end: float
    position: str


@dataclass(frozen=True)
class Style:
    font: str
    color: str
    outline: str
    size: int


@dataclass(frozen=True)
class Watermark:
    file: int
    corner: str
    margin: int
    opacity: float
    width: float


@dataclass(frozen=True)
class Plan:
    """Everything a render does, defaults applied and every time known."""

    width: int
    height: int
    fps: int
    frames: int
    video: list[VideoSpan]
    audio: list[AudioSpan]
    overlays: list[Overlay]
    cues: list[Cue]
    burn: bool
    srt: bool
    style: Style
    target_lufs: float
    watermark: Watermark | None

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def _too_short(message: str) -> InvalidMedia:
    return InvalidMedia(message, code="clip_too_short")


def _audio_extent(clip: dict[str, Any], source: Source, i: int) -> tuple[float, float]:
    """(in, seconds) of an audio clip's file that one pass plays."""
    if source.audio_seconds is None:
        raise InvalidMedia(f"audio[{i}]: file {clip['file']} has no sound", code="no_audio")
    start = float(clip.get("in", 0))
    end = min(float(clip.get("out", source.audio_seconds)), source.audio_seconds)
    if end - start <= 0.01:
        raise _too_short(f"audio[{i}] starts at {start:g} s; its file lasts {source.audio_seconds:g} s")
    return start, end - start


def resolve(timeline: dict[str, Any], sources: Sequence[Source]) -> Plan:
    """The plan of a checked timeline given its files (`sources`, by index): each video clip's
    length (written, or its file's; at least its ``hold_for`` audio's end, its tail and its
    transition out), every start on a clock of whole frames, every audio clip's start and span,
    and the captions' cues. Raises `ValidationError` as `check` does for kinds, and
    `InvalidMedia` (``clip_too_short``, ``no_audio``) for what only the files' lengths show."""
    check(timeline, kinds=[s.kind for s in sources])
    fmt = timeline["format"]
    fps = int(fmt.get("fps", 30))
    video, audio = timeline["video"], timeline.get("audio", [])
    audio_ids = {c["id"]: i for i, c in enumerate(audio) if "id" in c}
    extents = [_audio_extent(c, sources[c["file"]], i) for i, c in enumerate(audio)]

    def frames(seconds: float) -> int:
        return max(0, round(seconds * fps))

    starts: dict[str, int] = {}  # video clip id -> start frame
    spans: list[VideoSpan] = []
    at = 0
    for i, clip in enumerate(video):
        source = sources[clip["file"]]
        kind, fade = _transition(clip)
        last = i == len(video) - 1
        fade_frames = 0 if last or kind == "cut" else frames(fade)
        if source.kind == "image":
            seconds, source_in, source_seconds = float(clip["duration"]), 0.0, 0.0
        else:
            length = source.picture_seconds or 0.0
            source_in = float(clip.get("in", 0))
            end = min(float(clip.get("out", length)), length)
            if end - source_in < 1 / fps:
                raise _too_short(f"video[{i}] starts at {source_in:g} s; its file lasts {length:g} s")
            seconds = float(clip.get("duration", end - source_in))
            source_seconds = min(end - source_in, seconds)
        count = max(1, frames(seconds))
        held = clip.get("hold_for")
        if held is not None:
            j = audio_ids[held]
            anchor = audio[j].get("at", 0)
            if isinstance(anchor, dict):
                begin = (at if anchor["clip"] == clip.get("id") else starts[anchor["clip"]]) / fps
                begin += float(anchor.get("offset", 0))
            else:
                begin = float(anchor)
            needed = begin + extents[j][1] + HOLD_TAIL - at / fps + fade_frames / fps
            count = max(count, math.ceil(needed * fps - 1e-6))
        if "id" in clip:
            starts[clip["id"]] = at
        spans.append(
            VideoSpan(
                index=i,
                id=clip.get("id"),
                file=clip["file"],
                kind=source.kind,
                start=at / fps,
                seconds=count / fps,
                frames=count,
                source_in=source_in,
                source_seconds=min(source_seconds, count / fps),
                fit=clip.get("fit", "crop"),
                motion=clip.get("motion", "pan_zoom"),
                transition="cut" if fade_frames == 0 else kind,
                transition_frames=fade_frames,
            )
        )
        at += count - fade_frames
    for i, span in enumerate(spans[:-1]):
        shortest = min(span.frames, spans[i + 1].frames)
        if span.transition_frames and span.transition_frames >= shortest:
            raise _too_short(
                f"the transition after video[{i}] lasts {span.transition_frames / fps:g} s, "
                f"not shorter than a clip it joins ({shortest / fps:g} s)"
            )
    total = at
    duration = total / fps

    placed: list[AudioSpan] = []
    for i, clip in enumerate(audio):
        anchor = clip.get("at", 0)
        if isinstance(anchor, dict):
            start = starts[anchor["clip"]] / fps + float(anchor.get("offset", 0))
        else:
            start = float(anchor)
        source_in, source_seconds = extents[i]
        loop = bool(clip.get("loop", clip["role"] == "music"))
        seconds = max(0.0, duration - start) if loop else min(source_seconds, max(0.0, duration - start))
        placed.append(
            AudioSpan(
                index=i,
                id=clip.get("id"),
                file=clip["file"],
                role=clip["role"],
                start=round(start, 6),
                seconds=round(seconds, 6),
                source_in=source_in,
                source_seconds=source_seconds,
                volume=float(clip.get("volume", 1)),
                loop=loop,
                duck=bool(clip.get("duck", True)),
                text=str(clip.get("text", "")),
                whole=source_in == 0 and "out" not in clip,
            )
        )

    captions = timeline.get("captions", {})
    cues: list[Cue] = []
    if captions.get("from", "narration") == "narration":
        limit = int(captions.get("max_chars", CUE_CHARS))
        for sound in placed:
            if sound.role == "narration" and sound.text.strip() and sound.seconds > 0:
                cues += spread(split_text(sound.text, limit), sound.start, sound.start + sound.seconds)
    cues.sort(key=lambda cue: cue.start)

    style = timeline.get("style", {})
    mark = timeline.get("watermark")
    return Plan(
        width=int(fmt["width"]),
        height=int(fmt["height"]),
        fps=fps,
        frames=total,
        video=spans,
        audio=placed,
        overlays=[
            Overlay(t["text"], float(t["start"]), min(float(t["end"]), duration), t.get("position", "top"))
            for t in timeline.get("text", [])
            if t["start"] < duration
        ],
        cues=cues,
        burn=bool(captions.get("burn", True)),
        srt=writes_srt(timeline),
        style=Style(
            font=style.get("font", "DejaVu Sans"),
            color=style.get("color", "#FFFFFF"),
            outline=style.get("outline", "#000000"),
            size=int(style.get("size", 0)),
        ),
        target_lufs=float(timeline.get("loudness", {}).get("target_lufs", -14)),
        watermark=Watermark(
            file=mark["file"],
            corner=mark.get("corner", "bottom_right"),
            margin=int(mark.get("margin", 24)),
            opacity=float(mark.get("opacity", 0.85)),
            width=float(mark.get("width", 0.18)),
        )
        if mark
        else None,
    )


def writes_srt(timeline: dict[str, Any]) -> bool:
    """Whether the render writes ``captions.srt`` as its second output."""
    captions = timeline.get("captions", {}) if isinstance(timeline, dict) else {}
    return captions.get("from", "narration") != "none" and bool(captions.get("srt", True))


if __name__ == "__main__":  # python -m pipelines.timeline > docs/timeline.schema.json
    import json

    print(json.dumps(document(), indent=2))
