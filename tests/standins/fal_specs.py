"""Input schemas of the fal model endpoints the fal stand-in knows, and their validation.

Taken from RECIPES §10 2.4 (fal-js generated endpoint types). Validation is pydantic-like and
strict about types: where fal uses string enums (Kling/Sora/Wan-2.6 ``duration: "5"``, Veo
``duration: "8s"``) an int is rejected, and where it uses ints (LTX-2.3, Wan-2.7 ``duration: 6``)
a string is rejected. Unknown input fields are ignored, as fal does. Errors use fal's model-error
shape: ``{"loc": ["body", field, ...], "msg", "type", "url", "input", "ctx"?}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Detail = dict[str, Any]


@dataclass(frozen=True)
class F:
    """One input field: ``kind`` is str, int, float, bool, url, list, dict or image_size."""

    kind: str
    required: bool = False
    choices: tuple[Any, ...] = ()
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None
    fields: dict[str, F] = field(default_factory=dict)


def text(required: bool = False, max_length: int | None = None) -> F:
    return F("str", required, max_length=max_length)


def enum(*choices: Any, required: bool = False) -> F:
    kind = "int" if all(isinstance(c, int) for c in choices) else "str"
    return F(kind, required, tuple(choices))


def integer(ge: float | None = None, le: float | None = None, required: bool = False) -> F:
    return F("int", required, ge=ge, le=le)


def number(ge: float | None = None, le: float | None = None) -> F:
    return F("float", ge=ge, le=le)


def flag() -> F:
    return F("bool")


def url(required: bool = False) -> F:
    return F("url", required)


def items(required: bool = False) -> F:
    return F("list", required)


def obj(**fields: F) -> F:
    return F("dict", fields=fields)


@dataclass(frozen=True)
class ModelSpec:
    """``output`` is video, audio, music, transcript or images; ``check`` adds cross-field rules."""

    fields: dict[str, F]
    output: str
    family: str
    defaults: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], list[Detail]] | None = None


def error(
    loc: list[Any], msg: str, kind: str, value: Any = None, ctx: dict[str, Any] | None = None
) -> Detail:
    detail: Detail = {
        "loc": ["body", *loc],
        "msg": msg,
        "type": kind,
        "url": f"https://docs.fal.ai/errors#{kind}",
    }
    if value is not None:
        detail["input"] = value
    if ctx:
        detail["ctx"] = ctx
    return detail


def _expected(choices: tuple[Any, ...]) -> str:
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f" or {shown[-1]}"


_TYPE_ERRORS: dict[str, tuple[type | tuple[type, ...], str, str]] = {
    "str": (str, "string_type", "Input should be a valid string"),
    "url": (str, "string_type", "Input should be a valid string"),
    "float": ((int, float), "float_type", "Input should be a valid number"),
    "bool": (bool, "bool_type", "Input should be a valid boolean"),
    "list": (list, "list_type", "Input should be a valid list"),
    "dict": (dict, "dict_type", "Input should be a valid dictionary"),
}


def check_field(name: str | list[Any], spec: F, value: Any) -> list[Detail]:
    loc = name if isinstance(name, list) else [name]
    if spec.kind == "image_size":
        if isinstance(value, str):
            return check_field(loc, F("str", choices=spec.choices), value)
        return check_field(loc, F("dict", fields=spec.fields), value)
    if spec.choices:
        # Literal fields: "5" and 5 are different values, as in fal's pydantic schemas.
        if not any(type(value) is type(choice) and value == choice for choice in spec.choices):
            expected = _expected(spec.choices)
            return [error(loc, f"Input should be {expected}", "literal_error", value, {"expected": expected})]
        return []
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return [error(loc, "Input should be a valid integer", "int_type", value)]
    else:
        types, kind, msg = _TYPE_ERRORS[spec.kind]
        if (isinstance(value, bool) and spec.kind == "float") or not isinstance(value, types):
            return [error(loc, msg, kind, value)]
    if spec.ge is not None and value < spec.ge:
        return [
            error(
                loc,
                f"Input should be greater than or equal to {spec.ge}",
                "greater_than_equal",
                value,
                {"ge": spec.ge},
            )
        ]
    if spec.le is not None and value > spec.le:
        return [
            error(
                loc,
                f"Input should be less than or equal to {spec.le}",
                "less_than_equal",
                value,
                {"le": spec.le},
            )
        ]
    if spec.max_length is not None and len(value) > spec.max_length:
        ctx = {"max_length": spec.max_length}
        return [
            error(
                loc, f"String should have at most {spec.max_length} characters", "string_too_long", value, ctx
            )
        ]
    if spec.kind == "url" and not value.startswith(("http://", "https://", "data:")):
        return [error(loc, "Input should be a valid URL", "url_parsing", value)]
    if spec.kind == "dict" and spec.fields:
        return validate_fields(spec.fields, value, loc)
    return []


def validate_fields(
    fields: dict[str, F], data: dict[str, Any], prefix: list[Any] | None = None
) -> list[Detail]:
    errors: list[Detail] = []
    for name, spec in fields.items():
        loc = [*(prefix or []), name]
        if name not in data or data[name] is None:
            if spec.required:
                errors.append(error(loc, "Field required", "missing"))
            continue
        errors += check_field(loc, spec, data[name])
    return errors


def validate(spec: ModelSpec, data: Any) -> list[Detail]:
    if not isinstance(data, dict):
        return [
            {
                "loc": ["body"],
                "msg": "Input should be a valid dictionary",
                "type": "dict_type",
                "url": "https://docs.fal.ai/errors#dict_type",
            }
        ]
    errors = validate_fields(spec.fields, data)
    if not errors and spec.check is not None:
        errors = spec.check(data)
    return errors


# -- shared field groups ---------------------------------------------------------------------

ASPECT_3 = enum("16:9", "9:16", "1:1")
FIVE_OR_TEN = enum("5", "10")
KLING_PROMPT = 2500


def _prompt_or_multi_prompt(data: dict[str, Any]) -> list[Detail]:
    if data.get("prompt") or data.get("multi_prompt"):
        return []
    return [error(["prompt"], "Either prompt or multi_prompt is required", "missing")]


def _lyrics_unless_instrumental(data: dict[str, Any]) -> list[Detail]:
    if data.get("is_instrumental") or data.get("lyrics"):
        return []
    return [error(["lyrics"], "Lyrics are required unless is_instrumental is true", "missing")]


def _kling_v2_t2v() -> dict[str, F]:
    return {
        "prompt": text(True, KLING_PROMPT),
        "aspect_ratio": ASPECT_3,
        "duration": FIVE_OR_TEN,
        "negative_prompt": text(max_length=KLING_PROMPT),
        "cfg_scale": number(0, 1),
    }


def _kling_v2_i2v(tail: bool = False) -> dict[str, F]:
    fields = {
        "prompt": text(True, KLING_PROMPT),
        "image_url": url(True),
        "duration": FIVE_OR_TEN,
        "negative_prompt": text(max_length=KLING_PROMPT),
        "cfg_scale": number(0, 1),
    }
    if tail:
        fields["tail_image_url"] = url()
    return fields


KLING_V3_DURATION = enum(*(str(n) for n in range(3, 16)))


def _kling_v3(image: bool) -> dict[str, F]:
    fields = {
        "prompt": text(max_length=KLING_PROMPT),
        "duration": KLING_V3_DURATION,
        "generate_audio": flag(),
        "negative_prompt": text(max_length=KLING_PROMPT),
        "cfg_scale": number(0, 1),
        "multi_prompt": items(),
        "shot_type": enum("customize", "intelligent"),
    }
    if image:
        fields |= {"start_image_url": url(True), "end_image_url": url(), "elements": items()}
    else:
        fields["aspect_ratio"] = ASPECT_3
    return fields


def _sora(image: bool, pro: bool) -> dict[str, F]:
    resolutions: tuple[str, ...] = ("720p", "1080p", "true_1080p") if pro else ("720p",)
    fields = {
        "prompt": text(True),
        "aspect_ratio": enum("auto", "9:16", "16:9") if image else enum("16:9", "9:16"),
        "duration": enum("4", "8", "12", "16", "20"),
        "resolution": enum("auto", *resolutions) if image else enum(*resolutions),
        "delete_video": flag(),
        "character_ids": items(),
        "detect_and_block_ip": flag(),
    }
    if image:
        fields["image_url"] = url(True)
    if not pro and not image:
        fields["model"] = enum("sora-2", "sora-2-2025-12-08", "sora-2-2025-10-06")
    return fields


def _veo(image: bool, resolutions: tuple[str, ...] = ("720p", "1080p", "4k")) -> dict[str, F]:
    fields = {
        "prompt": text(True),
        "aspect_ratio": enum("auto", "16:9", "9:16") if image else enum("16:9", "9:16"),
        "duration": enum("4s", "6s", "8s"),
        "resolution": enum(*resolutions),
        "generate_audio": flag(),
        "negative_prompt": text(),
        "seed": integer(),
        "auto_fix": flag(),
        "safety_tolerance": enum(*(str(n) for n in range(1, 7))),
    }
    if image:
        fields["image_url"] = url(True)
    return fields


def _ltx(image: bool, fast: bool) -> dict[str, F]:
    fields = {
        "prompt": text(True),
        "duration": enum(*range(6, 21, 2)) if fast else enum(6, 8, 10),
        "resolution": enum("1080p", "1440p", "2160p"),
        "aspect_ratio": enum("auto", "16:9", "9:16") if image else enum("16:9", "9:16"),
        "fps": enum(24, 25, 48, 50),
        "generate_audio": flag(),
    }
    if image:
        fields |= {"image_url": url(True), "end_image_url": url()}
    return fields


def _wan27(image: bool) -> dict[str, F]:
    fields = {
        "prompt": text(not image),
        "duration": integer(2, 15),
        "resolution": enum("720p", "1080p"),
        "audio_url": url(),
        "negative_prompt": text(),
        "seed": integer(),
        "enable_prompt_expansion": flag(),
        "enable_safety_checker": flag(),
    }
    if image:
        fields |= {"image_url": url(), "end_image_url": url(), "video_url": url()}
    else:
        fields["aspect_ratio"] = enum("16:9", "9:16", "1:1", "4:3", "3:4")
    return fields


def _eleven_tts(multilingual: bool) -> dict[str, F]:
    fields = {
        "text": text(True),
        "voice": text(),
        "stability": number(0, 1),
        "language_code": text(),
        "apply_text_normalization": enum("auto", "on", "off"),
        "timestamps": flag(),
    }
    if multilingual:
        fields |= {
            "similarity_boost": number(0, 1),
            "style": number(0, 1),
            "speed": number(0.7, 1.2),
            "previous_text": text(),
            "next_text": text(),
        }
    return fields


def _minimax(v25: bool) -> dict[str, F]:
    if v25:
        setting = obj(
            format=enum("mp3", "wav", "pcm"),
            sample_rate=integer(16000, 44100),
            bitrate=integer(32000, 256000),
        )
        return {
            "prompt": text(True, 2000),
            "lyrics": text(max_length=3500),
            "is_instrumental": flag(),
            "lyrics_optimizer": flag(),
            "audio_setting": setting,
        }
    setting = obj(
        format=enum("mp3", "pcm", "flac"),
        sample_rate=integer(16000, 44100),
        bitrate=integer(32000, 256000),
        channel=enum(1, 2),
    )
    return {"prompt": text(True, 300), "lyrics_prompt": text(True, 3000), "audio_setting": setting}


IMAGE_SIZES = ("square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9")


def _flux2(edit: bool) -> dict[str, F]:
    sizes = (*IMAGE_SIZES, "auto") if edit else IMAGE_SIZES
    fields = {
        "prompt": text(True),
        "image_size": F(
            "image_size",
            choices=sizes,
            fields={"width": integer(required=True), "height": integer(required=True)},
        ),
        "output_format": enum("jpeg", "png"),
        "safety_tolerance": enum("1", "2", "3", "4", "5"),
        "enable_safety_checker": flag(),
        "seed": integer(),
        "sync_mode": flag(),
    }
    if edit:
        fields["image_urls"] = items(True)
    return fields


def _build() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    kling = {"duration": "5", "aspect_ratio": "16:9"}
    for tier in ("standard", "pro", "master"):
        specs[f"fal-ai/kling-video/v2.1/{tier}/text-to-video"] = ModelSpec(
            _kling_v2_t2v(), "video", "kling", kling
        )
        specs[f"fal-ai/kling-video/v2.1/{tier}/image-to-video"] = ModelSpec(
            _kling_v2_i2v(tier == "pro"), "video", "kling", kling
        )
    specs["fal-ai/kling-video/v2.5-turbo/pro/text-to-video"] = ModelSpec(
        _kling_v2_t2v(), "video", "kling", kling
    )
    specs["fal-ai/kling-video/v2.5-turbo/pro/image-to-video"] = ModelSpec(
        _kling_v2_i2v(True), "video", "kling", kling
    )
    specs["fal-ai/kling-video/v2.6/pro/text-to-video"] = ModelSpec(
        {**_kling_v2_t2v(), "generate_audio": flag()}, "video", "kling", kling
    )
    v26_i2v = {
        "prompt": text(True, KLING_PROMPT),
        "start_image_url": url(True),
        "end_image_url": url(),
        "duration": FIVE_OR_TEN,
        "generate_audio": flag(),
        "negative_prompt": text(max_length=KLING_PROMPT),
        "voice_ids": items(),
    }
    specs["fal-ai/kling-video/v2.6/pro/image-to-video"] = ModelSpec(v26_i2v, "video", "kling", kling)
    for tier in ("pro", "standard"):
        specs[f"fal-ai/kling-video/v3/{tier}/text-to-video"] = ModelSpec(
            _kling_v3(False), "video", "kling", kling, _prompt_or_multi_prompt
        )
        specs[f"fal-ai/kling-video/v3/{tier}/image-to-video"] = ModelSpec(
            _kling_v3(True), "video", "kling", kling
        )

    sora = {"duration": "4", "aspect_ratio": "16:9"}
    for suffix, pro in (("", False), ("/pro", True)):
        specs[f"fal-ai/sora-2/text-to-video{suffix}"] = ModelSpec(_sora(False, pro), "video", "sora", sora)
        specs[f"fal-ai/sora-2/image-to-video{suffix}"] = ModelSpec(_sora(True, pro), "video", "sora", sora)

    veo = {"duration": "8s", "aspect_ratio": "16:9", "generate_audio": True}
    for base in ("fal-ai/veo3.1", "fal-ai/veo3.1/fast"):
        specs[base] = ModelSpec(_veo(False), "video", "veo", veo)
        specs[f"{base}/image-to-video"] = ModelSpec(_veo(True), "video", "veo", veo)
    specs["fal-ai/veo3.1/lite"] = ModelSpec(_veo(False, ("720p", "1080p")), "video", "veo", veo)
    specs["fal-ai/veo3.1/lite/image-to-video"] = ModelSpec(_veo(True, ("720p", "1080p")), "video", "veo", veo)

    ltx = {"duration": 6, "aspect_ratio": "16:9", "fps": 25, "generate_audio": True}
    for kind, image in (("text-to-video", False), ("image-to-video", True)):
        specs[f"fal-ai/ltx-2.3/{kind}"] = ModelSpec(_ltx(image, False), "video", "ltx", ltx)
        specs[f"fal-ai/ltx-2.3/{kind}/fast"] = ModelSpec(_ltx(image, True), "video", "ltx", ltx)

    wan = {"duration": 5, "aspect_ratio": "16:9"}
    specs["fal-ai/wan/v2.7/text-to-video"] = ModelSpec(_wan27(False), "video", "wan", wan)
    specs["fal-ai/wan/v2.7/image-to-video"] = ModelSpec(_wan27(True), "video", "wan", wan)
    wan26 = {
        "prompt": text(True),
        "image_url": url(True),
        "duration": enum("5", "10", "15"),
        "resolution": enum("720p", "1080p"),
        "multi_shots": flag(),
        "audio_url": url(),
        "negative_prompt": text(),
        "seed": integer(),
    }
    specs["wan/v2.6/image-to-video"] = ModelSpec(
        wan26, "video", "wan", {"duration": "5", "aspect_ratio": "16:9"}
    )

    specs["fal-ai/elevenlabs/tts/eleven-v3"] = ModelSpec(_eleven_tts(False), "audio", "elevenlabs")
    specs["fal-ai/elevenlabs/tts/multilingual-v2"] = ModelSpec(_eleven_tts(True), "audio", "elevenlabs")
    specs["fal-ai/elevenlabs/tts/turbo-v2.5"] = ModelSpec(_eleven_tts(True), "audio", "elevenlabs")
    stt = {"audio_url": url(True), "language_code": text(), "diarize": flag(), "tag_audio_events": flag()}
    specs["fal-ai/elevenlabs/speech-to-text"] = ModelSpec(stt, "transcript", "elevenlabs")
    specs["fal-ai/elevenlabs/speech-to-text/scribe-v2"] = ModelSpec(
        {**stt, "keyterms": items()}, "transcript", "elevenlabs"
    )

    qwen_voices = ("Vivian", "Serena", "Uncle_Fu", "Dylan", "Eric", "Ryan", "Aiden", "Ono_Anna", "Sohee")
    qwen_languages = ("Auto", "English", "Chinese", "Spanish", "French", "German", "Italian", "Japanese")
    qwen_languages += ("Korean", "Portuguese", "Russian")
    for size in ("1.7b", "0.6b"):
        specs[f"fal-ai/qwen-3-tts/text-to-speech/{size}"] = ModelSpec(
            {
                "text": text(True),
                "voice": enum(*qwen_voices),
                "language": enum(*qwen_languages),
                "prompt": text(),
                "temperature": number(0, 2),
                "top_k": integer(1, 200),
                "top_p": number(0, 1),
            },
            "audio",
            "qwen",
        )
    gemini_voices = ("Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe")
    gemini_voices += ("Charon", "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore")
    gemini_voices += ("Laomedeia", "Leda", "Orus", "Pulcherrima", "Puck", "Rasalgethi", "Sadachbia")
    gemini_voices += (
        "Sadaltager",
        "Schedar",
        "Sulafat",
        "Umbriel",
        "Vindemiatrix",
        "Zephyr",
        "Zubenelgenubi",
    )
    specs["fal-ai/gemini-tts"] = ModelSpec(
        {
            "prompt": text(True),
            "voice": enum(*gemini_voices),
            "model": enum("gemini-2.5-flash-tts", "gemini-2.5-pro-tts"),
            "output_format": enum("wav", "mp3", "ogg_opus"),
            "language_code": text(),
            "style_instructions": text(),
            "temperature": number(0, 2),
            "speakers": items(),
        },
        "audio",
        "gemini",
    )

    for version in ("v2.5", "v2.6"):
        specs[f"fal-ai/minimax-music/{version}"] = ModelSpec(
            _minimax(True), "music", "minimax", {}, _lyrics_unless_instrumental
        )
    for version in ("v2", "v1.5"):
        specs[f"fal-ai/minimax-music/{version}"] = ModelSpec(_minimax(False), "music", "minimax")

    for name in ("flux-2-pro", "flux-2-max"):
        specs[f"fal-ai/{name}"] = ModelSpec(_flux2(False), "images", "flux", {"image_size": "landscape_4_3"})
        specs[f"fal-ai/{name}/edit"] = ModelSpec(_flux2(True), "images", "flux", {"image_size": "auto"})
    return specs


MODELS: dict[str, ModelSpec] = _build()
