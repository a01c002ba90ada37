"""The job types faktry runs, each with its parameters declared once as a JSON Schema.

The schema drives validation of ``POST /v1/jobs``, the OpenAPI document and the web
forms. A job type also declares its ``input`` (files by kind, prompts), the provider whose
queues run it and the step that does the work. Generative job types take a ``model`` from
the catalog, and the model's own parameter schema validates the rest of ``params``.

Each job type also says what kinds of file its outputs are, given its params
(`JobType.output_kinds`): a workflow graph checks with them that every edge carries a kind
the next node takes, before anything runs (pipelines/workflows/graph.py).

A job type may add a check of what a schema cannot say: parameters each within range whose
output together could never be made (a sprite sheet wider than JPEG allows) are refused at
submit with ``output_too_large``, naming the field.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from faktry.errors import ValidationError
from pipelines import timeline
from pipelines.catalog import default_catalog
from pipelines.media.ffmpeg import ASPECTS, CORNERS, JPEG_MAX_DIMENSION, PRESETS, TRANSITIONS, sprite_size
from pipelines.media.images import MAX_IMAGE_PIXELS
from pipelines.media.subtitles import COLOR, FONT_FAMILY
from pipelines.steps import edit, media, render
from pipelines.steps.base import StepContext, StepResult
from pipelines.urlinputs import MAX_URL_LENGTH

AUDIO_PRESETS = tuple(name for name in PRESETS if name.startswith("audio_"))
#: Heights of `video.captions`' 9:16 outputs.
CAPTION_HEIGHTS = (640, 1280, 1920)


def _no_outputs(params: dict[str, Any]) -> tuple[str, ...]:
    return ()


def _writes(*kinds: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    """Outputs of fixed kinds, whatever the params."""
    return lambda params: kinds


def _transcode_writes(params: dict[str, Any]) -> tuple[str, ...]:
    preset = str(params.get("preset", ""))
    if preset in AUDIO_PRESETS:
        return ("audio",)
    return ("playlist",) if preset == "hls" else ("video",)


def _captions_writes(params: dict[str, Any]) -> tuple[str, ...]:
    burned = ("video",) if params.get("burn", True) else ()
    return burned + ("subtitles",) * len(params.get("formats", []))


def _captions_write_something(params: dict[str, Any]) -> None:
    if not params.get("burn", True) and not params.get("formats"):
        raise ValidationError(
            "with burn false, list the subtitle formats to write (srt, vtt)",
            field="params.formats",
            code="nothing_to_write",
        )


def _normalize_writes(params: dict[str, Any]) -> tuple[str, ...]:
    return (params.get("output", "video"),)


def _normalize_takes(kind: str, params: dict[str, Any]) -> bool:
    """A video gives a video or its audio; an audio file only audio (``output: audio``)."""
    return kind == "video" or (kind == "audio" and params.get("output", "video") == "audio")


def _reframe_writes(params: dict[str, Any]) -> tuple[str, ...]:
    return ("video",) * len(params.get("aspects", list(ASPECTS)))


#: How many clips `video.concat` joins.
CONCAT_CLIPS = (2, 20)


def _concat_count(value: dict[str, Any]) -> None:
    clips = value.get("file_ids")
    if isinstance(clips, list) and not CONCAT_CLIPS[0] <= len(clips) <= CONCAT_CLIPS[1]:
        few = len(clips) < CONCAT_CLIPS[0]
        raise ValidationError(
            f"video.concat joins {CONCAT_CLIPS[0]} to {CONCAT_CLIPS[1]} clips; {len(clips)} were given",
            field="input.file_ids",
            code="too_few_clips" if few else "too_many_clips",
        )


def _render_params(value: Any) -> dict[str, Any]:
    """``{"timeline": ...}``, the timeline checked with paths such as
    ``params.timeline.video[1].out`` (pipelines/timeline.py)."""
    if not isinstance(value, dict):
        raise ValidationError("params must be an object", field="params")
    unknown = sorted(set(value) - {"timeline"})
    if unknown:
        raise ValidationError(
            f"unknown params field {unknown[0]!r}; allowed: timeline",
            field=f"params.{unknown[0]}",
            code="unknown_field",
        )
    if "timeline" not in value:
        raise ValidationError("missing required params field 'timeline'", field="params.timeline")
    return {"timeline": timeline.validate(value["timeline"])}


def _render_files(params: dict[str, Any], kinds: dict[str, str]) -> None:
    """Each ``file`` of the timeline names one of ``input.file_ids``, of a kind its place takes."""
    listed = [
        kinds.get(f"file_ids.{i}") for i in range(sum(1 for slot in kinds if slot.startswith("file_ids.")))
    ]
    timeline.check(params["timeline"], kinds=listed)


def _render_seconds(params: dict[str, Any], file_seconds: Sequence[float | None] = ()) -> float:
    return timeline.stated_seconds(params.get("timeline") or {}, file_seconds)


def _render_writes(params: dict[str, Any]) -> tuple[str, ...]:
    return ("video", "subtitles") if timeline.writes_srt(params.get("timeline") or {}) else ("video",)


def _file_input(kinds: frozenset[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"file_id": {"type": "string", "minLength": 1, "maxLength": 40}},
        "required": ["file_id"],
        "additionalProperties": False,
    }


class PricedSeconds(Protocol):
    def __call__(self, params: dict[str, Any], file_seconds: Sequence[float | None] = ()) -> float: ...


@dataclass(frozen=True)
class JobType:
    name: str
    description: str
    params_schema: dict[str, Any]
    input_kinds: frozenset[str]
    run: Callable[[StepContext], StepResult]
    provider: str = "local"
    #: JSON Schema of ``input``; by default one ``file_id`` of an accepted kind.
    input_schema: dict[str, Any] | None = None
    #: Input fields that name files, with the kinds each accepts.
    file_fields: dict[str, frozenset[str]] | None = None
    #: Generative: ``params.model`` picks a catalog model whose schema validates ``params``.
    generative: bool = False
    #: Checks the validated params together; raises `ValidationError` naming a field.
    check: Callable[[dict[str, Any]], None] | None = None
    #: The kinds of the job's outputs, in order, given its validated params.
    produces: Callable[[dict[str, Any]], tuple[str, ...]] = _no_outputs
    #: Which kinds ``file_id`` takes given the params, when that depends on them.
    takes: Callable[[str, dict[str, Any]], bool] | None = None
    #: Input fields that name a list of files rather than one (``file_ids``).
    list_fields: frozenset[str] = frozenset()
    #: Checks the input before its schema, for refusals with a code of their own.
    input_check: Callable[[dict[str, Any]], None] | None = None
    #: Validates ``params`` in place of the generic schema check, for a document with error
    #: paths of its own (``params.timeline.video[1].out``); returns them with defaults applied.
    validate_params: Callable[[Any], dict[str, Any]] | None = None
    #: Checks the validated params against the kinds of the files the input names, by slot
    #: (`file_slots`: ``file_ids.3`` -> ``image``); raises `ValidationError` naming a field.
    check_files: Callable[[dict[str, Any], dict[str, str]], None] | None = None
    #: The seconds a quote prices and the tier's length limit reads, from the params (and the
    #: lengths of the listed files, in order, where known) instead of the input's duration.
    priced_seconds: PricedSeconds | None = None

    def output_kinds(self, params: dict[str, Any]) -> tuple[str, ...]:
        """What the job's outputs are (``image``, ``video``, ``audio``, ``playlist``,
        ``subtitles``), one per output in the order the job lists them; empty for a job that
        writes no file (a probe)."""
        return self.produces(params)

    @cached_property
    def checked_inputs(self) -> dict[str, Any]:
        """`inputs`, built once, for the checks here (which keep a validator per schema);
        never changed in place."""
        return self.inputs

    @property
    def inputs(self) -> dict[str, Any]:
        """The input's JSON Schema; each field naming a file says the kinds it accepts in
        ``x-faktry-kinds`` (forms offer only files of those kinds)."""
        schema = copy.deepcopy(self.input_schema or _file_input(self.input_kinds))
        for name, kinds in self.files.items():
            prop = schema.get("properties", {}).get(name)
            if prop is not None:
                prop["x-faktry-kinds"] = sorted(kinds)
                prop.setdefault("description", f"The id of a file of yours: {', '.join(sorted(kinds))}.")
        if self.takes_url:
            _with_url(schema)
        return schema

    @property
    def takes_url(self) -> bool:
        """Whether ``input.url`` may stand for ``input.file_id`` (pipelines/urlinputs.py): a
        type whose main input is one file."""
        return "file_id" in self.files and not self.list_fields

    @property
    def files(self) -> dict[str, frozenset[str]]:
        return self.file_fields if self.file_fields is not None else {"file_id": self.input_kinds}

    def validate(self, params: Any, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The params with defaults applied, or a 422 naming the offending field."""
        if self.validate_params is not None and schema is None:
            validated = self.validate_params(params)
        else:
            validated = _validated(params, schema or self.params_schema, "params")
        if self.check is not None:
            self.check(validated)
        return validated

    def validate_input(self, value: Any) -> dict[str, Any]:
        if self.input_check is not None and isinstance(value, dict):
            self.input_check(value)
        return _validated(value, self.checked_inputs, "input")

    def accepts(self, kind: str, params: dict[str, Any]) -> bool:
        if self.name == "video.transcode" and kind == "audio":
            return params.get("preset") in AUDIO_PRESETS
        if self.takes is not None:
            return self.takes(kind, params)
        return kind in self.input_kinds


def file_slots(job_type: JobType, inputs: dict[str, Any]) -> dict[str, Any]:
    """Every file id an input names, by slot: the field's name, or ``<field>.<i>`` for the
    i-th file of a list field (the path a refusal names, as ``input.<slot>``)."""
    slots: dict[str, Any] = {}
    for name in job_type.files:
        value = inputs.get(name)
        if name in job_type.list_fields and isinstance(value, list):
            slots.update({f"{name}.{i}": item for i, item in enumerate(value)})
        elif value is not None:
            slots[name] = value
    return slots


def slot_field(slot: str) -> str:
    return slot.split(".", 1)[0]


def priced_media(
    job_type: JobType, media: dict[str, dict[str, Any]], params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The media facts a price and the tier's length limit read, given each slot's
    (`file_slots`): for a job type that prices its params (`JobType.priced_seconds`), that
    length; else the main file's (``file_id``); for a job over a list of files, their
    durations summed (what a concatenation lasts at most)."""
    if job_type.priced_seconds is not None and params is not None:
        listed = [
            media[slot].get("duration")
            for slot in sorted((s for s in media if "." in s), key=lambda s: int(s.rsplit(".", 1)[1]))
        ]
        seconds = [float(d) if isinstance(d, int | float) else None for d in listed]
        return {"duration": job_type.priced_seconds(params, seconds)}
    if "file_id" in media or not job_type.list_fields:
        return media.get("file_id", {})
    durations = [m.get("duration") for m in media.values()]
    known = [float(d) for d in durations if isinstance(d, int | float)]
    if not durations or len(known) < len(durations):
        return {}
    return {"duration": sum(known)}


def input_problems(job_type: JobType, value: Any) -> list[ValidationError]:
    """Every way ``value`` breaks the job type's input schema, each naming its field (a
    workflow graph reports them all at once; a submit, the first)."""
    if not isinstance(value, dict):
        return [ValidationError("input must be an object", field="input")]
    return [_field_error(err, "input") for err in _schema_errors(value, job_type.checked_inputs)]


def _schema_errors(value: dict[str, Any], schema: dict[str, Any]) -> list[SchemaError]:
    return sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))


#: A validator per schema, built on first use: building one costs more than most checks.
#: Keyed by the schema's identity, with the schema kept beside it so the key stays its own.
_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    kept = _VALIDATORS.get(id(schema))
    if kept is None or kept[0] is not schema:
        if len(_VALIDATORS) >= 1024:  # schemas are few and long-lived; never grow without end
            _VALIDATORS.clear()
        kept = _VALIDATORS[id(schema)] = (schema, Draft202012Validator(schema))
    return kept[1]


def _validated(value: Any, schema: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{where} must be an object", field=where)
    errors = _schema_errors(value, schema)
    if errors:
        raise _field_error(errors[0], where)
    out = dict(value)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = prop["default"]
    return out


def _field_error(err: SchemaError, where: str = "params") -> ValidationError:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - allowed)
        name = ".".join(filter(None, [path, extra[0] if extra else ""]))
        # The same code as an unknown top-level field (web/bodies.py), with the field's path.
        return ValidationError(
            f"unknown {where} field {name!r}; allowed: {', '.join(sorted(allowed)) or 'none'}",
            field=f"{where}.{name}",
            code="unknown_field",
        )
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        name = ".".join(filter(None, [path, missing[0] if missing else ""]))
        return ValidationError(f"missing required {where} field {name!r}", field=f"{where}.{name}")
    if err.validator == "anyOf" and all(set(alt) == {"required"} for alt in err.validator_value):
        # One of several fields (``file_id`` or ``url``): missing, said of the first.
        names = [alt["required"][0] for alt in err.validator_value]
        name = ".".join(filter(None, [path, names[0]]))
        others = " or ".join(repr(n) for n in names[1:])
        message = f"missing required {where} field {name!r} (or {others})"
        return ValidationError(message, field=f"{where}.{name}")
    field = f"{where}.{path}" if path else where
    if err.validator == "not" and isinstance(err.validator_value, dict) and "required" in err.validator_value:
        both = list(err.validator_value["required"])
        return ValidationError(
            f"give {' or '.join(both)}, not both", field=f"{field}.{both[0]}", code="conflicting_fields"
        )
    return ValidationError(f"{field} {_in_words(err)}", field=field)


_WORDS_OF_TYPES = {
    "integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
    "object": "an object", "array": "a list", "null": "null",
}  # fmt: skip


def _in_words(err: SchemaError) -> str:
    """What a schema refusal means, said as a sentence (not the schema's own text)."""
    rule, value = err.validator, err.validator_value
    if rule == "minimum":
        return f"must be at least {value}"
    if rule == "maximum":
        return f"must be at most {value}"
    if rule == "exclusiveMinimum":
        return f"must be more than {value}"
    if rule == "exclusiveMaximum":
        return f"must be less than {value}"
    if rule == "enum":
        return f"must be one of: {', '.join(str(v) for v in value)}"
    if rule == "const":
        return f"must be {value!r}"
    if rule == "type":
        kinds = value if isinstance(value, list) else [value]
        return "must be " + " or ".join(_WORDS_OF_TYPES.get(str(k), str(k)) for k in kinds)
    if rule == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters long"
    if rule == "maxLength":
        return f"must be at most {value} characters long"
    if rule == "minItems":
        return "must not be empty" if value == 1 else f"must have at least {value} items"
    if rule == "maxItems":
        return f"must have at most {value} items"
    if rule == "pattern":
        return "is not in the expected form"
    return f"is not valid: {err.message}"


def _obj(
    properties: dict[str, Any], required: list[str] | None = None, *, exclusive: list[str] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    if exclusive:
        schema["not"] = {"required": exclusive}
    return schema


_dimension = {"type": "integer", "minimum": 1, "maximum": 8192}
_FILE = {"type": "string", "minLength": 1, "maxLength": 40}
_BRAND = {"type": "string", "minLength": 1, "maxLength": 40}


def _with_url(schema: dict[str, Any]) -> None:
    """Let ``url`` stand for ``file_id`` in an input schema: one of the two, never both."""
    schema["properties"]["url"] = {
        "type": "string",
        "format": "uri",
        "minLength": 1,
        "maxLength": MAX_URL_LENGTH,
        "description": "An http(s) URL to fetch instead of giving file_id: the worker stores it in "
        "your library as an upload (or uses a file of yours with the same bytes), then runs the job.",
    }
    required = schema.get("required", [])
    if "file_id" in required:
        schema["required"] = [name for name in required if name != "file_id"]
        schema["anyOf"] = [{"required": ["file_id"]}, {"required": ["url"]}]
    both = {"not": {"required": ["file_id", "url"]}}
    if "not" in schema:  # a pair of its own already: both apply
        schema.setdefault("allOf", []).append(both)
    else:
        schema.update(both)


def _input_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _too_large(message: str, field: str) -> ValidationError:
    return ValidationError(message, field=field, code="output_too_large")


def _sprite_fits(params: dict[str, Any]) -> None:
    """A sprite sheet is ``columns * width`` pixels wide, and JPEG stops at 65,500. Its height
    depends on the video's shape and is checked when the job runs."""
    if not params.get("sprite"):
        return
    # The same defaults as the step (pipelines/steps/media.py).
    columns, width = params.get("columns", 5), params.get("width", 160)
    sheet_width, _ = sprite_size(frames=params.get("frames", 10), columns=columns, width=width)
    if sheet_width > JPEG_MAX_DIMENSION:
        raise _too_large(
            f"a sprite sheet of {columns} columns of width {width} is {sheet_width} pixels wide; "
            f"JPEG allows at most {JPEG_MAX_DIMENSION}: lower params.width or params.columns",
            "params.width",
        )


def _resize_fits(params: dict[str, Any]) -> None:
    """The box must be within the image pixel limit, whatever the mode. This checks the
    default limit; a deployment with a lower ``max_image_pixels`` refuses the rest when the
    job runs, with the same code."""
    width, height = params["width"], params["height"]
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_large(
            f"a {width}x{height} image is {width * height} pixels; at most {MAX_IMAGE_PIXELS} are allowed",
            "params.width",
        )


JOB_TYPES: dict[str, JobType] = {
    jt.name: jt
    for jt in [
        JobType(
            name="media.probe",
            description="Read the media facts of a file (duration, size, codecs, streams).",
            params_schema=_obj({}),
            input_kinds=frozenset({"video", "audio", "image"}),
            run=media.probe,
            produces=_no_outputs,
        ),
        JobType(
            name="video.transcode",
            description="Transcode to a named preset: H.264 MP4, VP9 WebM, audio only, or an HLS ladder.",
            params_schema=_obj(
                {
                    "preset": {
                        "type": "string",
                        "enum": list(PRESETS),
                        "description": "; ".join(f"{k}: {v}" for k, v in PRESETS.items()),
                    }
                },
                ["preset"],
            ),
            input_kinds=frozenset({"video"}),
            run=media.transcode,
            produces=_transcode_writes,
        ),
        JobType(
            name="video.thumbnail",
            description="One frame at a time or a fraction of the duration, or a sprite sheet of N frames.",
            params_schema=_obj(
                {
                    "sprite": {"type": "boolean", "default": False},
                    "at_seconds": {"type": "number", "minimum": 0},
                    "at_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                    "width": {"type": "integer", "minimum": 16, "maximum": 3840},
                    "format": {"type": "string", "enum": ["jpeg", "png", "webp"], "default": "jpeg"},
                    "frames": {"type": "integer", "minimum": 2, "maximum": 100, "default": 10},
                    "columns": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                },
                # "at_seconds" and "at_fraction" exclude each other.
                exclusive=["at_seconds", "at_fraction"],
            ),
            input_kinds=frozenset({"video"}),
            run=media.thumbnail,
            check=_sprite_fits,
            produces=_writes("image"),
        ),
        JobType(
            name="image.resize",
            description="Resize to fit within, fill, or crop to a box; JPEG, PNG or WebP; metadata stripped.",
            params_schema=_obj(
                {
                    "width": _dimension,
                    "height": _dimension,
                    "mode": {"type": "string", "enum": ["fit", "fill", "crop"], "default": "fit"},
                    "format": {"type": "string", "enum": ["jpeg", "png", "webp"], "default": "jpeg"},
                    "quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": 85},
                },
                ["width", "height"],
            ),
            input_kinds=frozenset({"image"}),
            run=media.resize,
            check=_resize_fits,
            produces=_writes("image"),
        ),
        JobType(
            name="video.captions",
            description="Burn a transcript's subtitles (the WebVTT output of speech.transcribe) into "
            "a 9:16 video of a video or audio file: cropped or padded to portrait, captions at the bottom.",
            params_schema=_obj(
                {
                    "height": {
                        "type": "integer",
                        "enum": list(CAPTION_HEIGHTS),
                        "default": 1280,
                        "description": "Lines of the 9:16 output; the width is 9/16 of it.",
                    },
                    "fit": {
                        "type": "string",
                        "enum": ["crop", "pad"],
                        "default": "crop",
                        "description": "crop: fill the frame, cutting the sides; pad: all of the "
                        "picture, with bars above and below.",
                    },
                    "font_size": {
                        "type": "integer",
                        "minimum": 12,
                        "maximum": 200,
                        "description": "Caption size in pixels; by default 1/20 of the height.",
                    },
                    "position": {"type": "string", "enum": ["bottom", "middle", "top"], "default": "bottom"},
                    "burn": {
                        "type": "boolean",
                        "default": True,
                        "description": "Burn the captions into a 9:16 video (the first output).",
                    },
                    "formats": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["srt", "vtt"]},
                        "uniqueItems": True,
                        "maxItems": 2,
                        "default": [],
                        "description": "Also write the captions as these subtitle files, in this order, "
                        "after the video.",
                    },
                    # No schema defaults for the style: a brand's fill what the request leaves
                    # out, else DejaVu Sans, #FFFFFF and #000000 (pipelines/services.py).
                    "font_family": {
                        "type": "string",
                        "pattern": FONT_FAMILY.pattern,
                        "description": "A font installed on the workers; another is used if it is not. "
                        "By default the brand's body font, else DejaVu Sans.",
                    },
                    "text_color": {
                        "type": "string",
                        "pattern": COLOR.pattern,
                        "description": "By default the brand's primary colour, else #FFFFFF.",
                    },
                    "outline_color": {
                        "type": "string",
                        "pattern": COLOR.pattern,
                        "description": "By default the brand's accent colour, else #000000.",
                    },
                    "brand_id": {
                        **_BRAND,
                        "description": "A brand of yours whose body font and primary and accent colours "
                        "style the captions where the request does not set them.",
                    },
                }
            ),
            input_kinds=frozenset({"video", "audio"}),
            run=media.captions,
            input_schema=_input_schema(
                {"file_id": _FILE, "subtitles_file_id": _FILE}, ["file_id", "subtitles_file_id"]
            ),
            file_fields={
                "file_id": frozenset({"video", "audio"}),
                "subtitles_file_id": frozenset({"subtitles"}),
            },
            check=_captions_write_something,
            produces=_captions_writes,
        ),
        JobType(
            name="audio.normalize",
            description="Normalize loudness to a target (EBU R128, two-pass loudnorm) for an audio file "
            "or a video's audio (the picture copied as it is); loudness measured before and after.",
            params_schema=_obj(
                {
                    "target_lufs": {
                        "type": "number",
                        "minimum": -40,
                        "maximum": -5,
                        "default": -14,
                        "description": "Integrated loudness to reach, in LUFS (-14 suits streaming).",
                    },
                    "true_peak": {
                        "type": "number",
                        "minimum": -9,
                        "maximum": 0,
                        "default": -1,
                        "description": "The highest true peak allowed, in dBTP.",
                    },
                    "output": {
                        "type": "string",
                        "enum": ["video", "audio"],
                        "default": "video",
                        "description": "video: the video with its audio normalized; audio: only the "
                        "normalized audio (required for an audio file).",
                    },
                }
            ),
            input_kinds=frozenset({"video", "audio"}),
            run=edit.normalize,
            takes=_normalize_takes,
            produces=_normalize_writes,
        ),
        JobType(
            name="video.watermark",
            description="Overlay a logo (an image of the library) at a corner of a video, with a "
            "margin and an opacity, sized relative to the video's width.",
            params_schema=_obj(
                {
                    "corner": {"type": "string", "enum": list(CORNERS), "default": "bottom_right"},
                    "scale": {
                        "type": "number",
                        "minimum": 0.02,
                        "maximum": 1,
                        "default": 0.15,
                        "description": "The logo's width as a fraction of the video's.",
                    },
                    "margin": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 0.25,
                        "default": 0.03,
                        "description": "Distance from both edges, as a fraction of the video's width.",
                    },
                    "opacity": {"type": "number", "minimum": 0.05, "maximum": 1, "default": 0.8},
                    "brand_id": {
                        **_BRAND,
                        "description": "A brand of yours whose logo is used when input.logo_file_id "
                        "is not given.",
                    },
                }
            ),
            input_kinds=frozenset({"video"}),
            run=edit.watermark,
            # logo_file_id, or the logo of params.brand_id (checked at submit, pipelines/services.py).
            input_schema=_input_schema({"file_id": _FILE, "logo_file_id": _FILE}, ["file_id"]),
            file_fields={"file_id": frozenset({"video"}), "logo_file_id": frozenset({"image"})},
            produces=_writes("video"),
        ),
        JobType(
            name="video.reframe",
            description="Crop a video to other aspects (16:9, 9:16, 1:1), one video each, placed where "
            "the picture's activity is rather than in the centre.",
            params_schema=_obj(
                {
                    "aspects": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(ASPECTS)},
                        "minItems": 1,
                        "maxItems": len(ASPECTS),
                        "uniqueItems": True,
                        "default": list(ASPECTS),
                        "description": "The aspects to make, one output each, in this order.",
                    }
                }
            ),
            input_kinds=frozenset({"video"}),
            run=edit.reframe,
            produces=_reframe_writes,
        ),
        JobType(
            name="video.concat",
            description="Join 2 to 20 clips of any sizes and frame rates into one MP4 of one size and "
            "rate, with optional crossfades.",
            params_schema=_obj(
                {
                    "width": {
                        "type": "integer",
                        "minimum": 16,
                        "maximum": 3840,
                        "multipleOf": 2,
                        "default": 1280,
                    },
                    "height": {
                        "type": "integer",
                        "minimum": 16,
                        "maximum": 3840,
                        "multipleOf": 2,
                        "default": 720,
                    },
                    "fps": {"type": "integer", "minimum": 1, "maximum": 60, "default": 30},
                    "fit": {"type": "string", "enum": ["pad", "crop"], "default": "pad"},
                    "crossfade": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 5,
                        "default": 0,
                        "description": "Seconds each boundary fades over (0: a cut).",
                    },
                    "transition": {"type": "string", "enum": list(TRANSITIONS), "default": "fade"},
                }
            ),
            input_kinds=frozenset({"video"}),
            run=edit.concat,
            input_schema=_input_schema(
                {
                    "file_ids": {
                        "type": "array",
                        "items": _FILE,
                        "minItems": CONCAT_CLIPS[0],
                        "maxItems": CONCAT_CLIPS[1],
                        "description": "The clips, in order.",
                    }
                },
                ["file_ids"],
            ),
            file_fields={"file_ids": frozenset({"video"})},
            list_fields=frozenset({"file_ids"}),
            input_check=_concat_count,
            produces=_writes("video"),
        ),
        JobType(
            name="video.render",
            description="Render a timeline (docs/timeline.md) of stills and clips with narration, music, "
            "captions, titles and a watermark into one MP4, loudness-normalized; its captions also "
            "as an SRT file.",
            params_schema=_obj(
                {
                    "timeline": {
                        **timeline.TIMELINE_SCHEMA,
                        "description": "The video to make (docs/timeline.md).",
                    }
                },
                ["timeline"],
            ),
            input_kinds=frozenset({"image", "video", "audio"}),
            run=render.render,
            input_schema=_input_schema(
                {
                    "file_ids": {
                        "type": "array",
                        "items": _FILE,
                        "minItems": 1,
                        "maxItems": timeline.MAX_FILES,
                        "description": "The files the timeline names by index (its `file` fields).",
                    }
                },
                ["file_ids"],
            ),
            file_fields={"file_ids": frozenset({"image", "video", "audio"})},
            list_fields=frozenset({"file_ids"}),
            validate_params=_render_params,
            check_files=_render_files,
            priced_seconds=_render_seconds,
            produces=_render_writes,
        ),
    ]
}


def _not_a_step(ctx: StepContext) -> StepResult:
    raise RuntimeError("generation jobs run through pipelines.runner's provider path")


_PROMPT = {"type": "string", "minLength": 1, "maxLength": 32000}
_input = _input_schema


def _generative(
    name: str,
    description: str,
    inputs: dict[str, Any],
    files: dict[str, frozenset[str]] | None = None,
    *,
    produces: tuple[str, ...],
) -> JobType:
    models = sorted(m.id for m in default_catalog().for_type(name))
    return JobType(
        name=name,
        description=description,
        params_schema={
            "type": "object",
            "properties": {"model": {"type": "string", "enum": models, "description": "See GET /v1/models."}},
            "required": ["model"],
            "description": "`model`, plus the parameters that model takes (GET /v1/models lists them).",
        },
        input_kinds=frozenset().union(*files.values()) if files else frozenset(),
        run=_not_a_step,
        input_schema=inputs,
        file_fields=files or {},
        generative=True,
        produces=_writes(*produces),
    )


_IMAGE = frozenset({"image"})
for _jt in [
    _generative(
        "image.generate",
        "Generate an image from a prompt.",
        _input({"prompt": _PROMPT}, ["prompt"]),
        produces=("image",),
    ),
    _generative(
        "image.edit",
        "Edit an image as the prompt says (an optional PNG mask marks where).",
        _input({"prompt": _PROMPT, "file_id": _FILE, "mask_file_id": _FILE}, ["prompt", "file_id"]),
        {"file_id": _IMAGE, "mask_file_id": _IMAGE},
        produces=("image",),
    ),
    _generative(
        "video.generate",
        "Generate a video from a prompt, or from a prompt and a start image.",
        _input({"prompt": _PROMPT, "file_id": _FILE}, ["prompt"]),
        {"file_id": _IMAGE},
        produces=("video",),
    ),
    _generative(
        "speech.synthesize",
        "Speak a text.",
        _input({"text": {"type": "string", "minLength": 1, "maxLength": 5000}}, ["text"]),
        produces=("audio",),
    ),
    _generative(
        "speech.transcribe",
        "Transcribe the speech in an audio or video file: the text, and its subtitles as WebVTT.",
        _input({"file_id": _FILE}, ["file_id"]),
        {"file_id": frozenset({"audio", "video"})},
        produces=("subtitles",),
    ),
    _generative(
        "music.generate",
        "Generate music from a style prompt and, optionally, lyrics.",
        _input(
            {
                "prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
                "lyrics": {"type": "string", "maxLength": 3500},
            },
            ["prompt"],
        ),
        produces=("audio",),
    ),
]:
    JOB_TYPES[_jt.name] = _jt


def get(name: Any) -> JobType:
    if not isinstance(name, str) or name not in JOB_TYPES:
        known = ", ".join(sorted(JOB_TYPES))
        raise ValidationError(
            f"unknown job type {name!r}; known types: {known}",
            field="type",
            code="unknown_job_type",
            details={"known_types": sorted(JOB_TYPES)},
        )
    return JOB_TYPES[name]
