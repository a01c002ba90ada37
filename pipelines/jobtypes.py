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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from faktry.errors import ValidationError
from pipelines.catalog import default_catalog
from pipelines.media.ffmpeg import JPEG_MAX_DIMENSION, PRESETS, sprite_size
from pipelines.media.images import MAX_IMAGE_PIXELS
from pipelines.steps import media
from pipelines.steps.base import StepContext, StepResult

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


def _file_input(kinds: frozenset[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"file_id": {"type": "string", "minLength": 1, "maxLength": 40}},
        "required": ["file_id"],
        "additionalProperties": False,
    }


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

    def output_kinds(self, params: dict[str, Any]) -> tuple[str, ...]:
        """What the job's outputs are (``image``, ``video``, ``audio``, ``playlist``,
        ``subtitles``), one per output in the order the job lists them; empty for a job that
        writes no file (a probe)."""
        return self.produces(params)

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
        return schema

    @property
    def files(self) -> dict[str, frozenset[str]]:
        return self.file_fields if self.file_fields is not None else {"file_id": self.input_kinds}

    def validate(self, params: Any, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The params with defaults applied, or a 422 naming the offending field."""
        validated = _validated(params, schema or self.params_schema, "params")
        if self.check is not None:
            self.check(validated)
        return validated

    def validate_input(self, value: Any) -> dict[str, Any]:
        return _validated(value, self.inputs, "input")

    def accepts(self, kind: str, params: dict[str, Any]) -> bool:
        if self.name == "video.transcode" and kind == "audio":
            return params.get("preset") in AUDIO_PRESETS
        return kind in self.input_kinds


def input_problems(job_type: JobType, value: Any) -> list[ValidationError]:
    """Every way ``value`` breaks the job type's input schema, each naming its field (a
    workflow graph reports them all at once; a submit, the first)."""
    if not isinstance(value, dict):
        return [ValidationError("input must be an object", field="input")]
    return [_field_error(err, "input") for err in _schema_errors(value, job_type.inputs)]


def _schema_errors(value: dict[str, Any], schema: dict[str, Any]) -> list[SchemaError]:
    return sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))


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
    return ValidationError(f"{where}.{path}: {err.message}", field=f"{where}.{path}" if path else where)


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
            produces=_writes("video"),
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
