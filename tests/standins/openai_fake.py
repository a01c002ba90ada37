"""A local stand-in for the slice of the OpenAI API that faktry uses, served over loopback.

`OpenAIFake` serves ``/v1/images/generations``, ``/v1/images/edits``, ``/v1/audio/speech``,
``/v1/audio/transcriptions`` and ``/v1/moderations`` the way the real API answers the ``openai``
SDK: Bearer auth, ``{"error": {message, type, param, code}}`` error bodies, real PNG/JPEG/WebP
images in ``b64_json``, real audio bytes, and transcripts in every ``response_format``.

Faults can be scripted on the object (`fail`, `hang`, `outage`) or per request with headers,
which the SDK sends on every retry (``extra_headers=...``):

- ``X-Fake-Fail: 429`` answers with that status; ``X-Fake-Fail-Count: N`` limits it to the first
  N attempts (read from the SDK's ``X-Stainless-Retry-Count``), otherwise every attempt fails.
- ``X-Fake-Sleep: 1.5`` stalls before answering; ``X-Fake-Sleep-Count: N`` limits it likewise.
- ``X-Fake-Retry-After-Ms: 20`` overrides the ``retry-after-ms`` sent with a header-driven fault.

Every request is logged in `OpenAIFake.calls` (see `faults.record_request`) with its ``status``.
"""

from __future__ import annotations

import base64
import io
import math
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from PIL import Image, UnidentifiedImageError
from werkzeug.datastructures import FileStorage

from tests.standins import media
from tests.standins.faults import CallLog, Faults, record_request
from tests.standins.server import Served, ServedApp

GPT_IMAGE_MODELS = frozenset(
    {
        "gpt-image-1",
        "gpt-image-1-mini",
        "gpt-image-1.5",
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "chatgpt-image-latest",
    }
)
IMAGE_MODELS = GPT_IMAGE_MODELS | {"dall-e-2", "dall-e-3"}
GPT_IMAGE_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
DALLE_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
}
GPT_ONLY_IMAGE_PARAMS = ("background", "output_format", "output_compression", "moderation", "partial_images")
GENERATE_PARAMS = frozenset(
    {
        "model",
        "prompt",
        "n",
        "size",
        "quality",
        "user",
        "response_format",
        "style",
        "stream",
        *GPT_ONLY_IMAGE_PARAMS,
    }
)
EDIT_PARAMS = GENERATE_PARAMS - {"style"} | {"image", "image[]", "mask", "input_fidelity"}

SPEECH_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"})
VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "onyx",
        "nova",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
    }
)
SPEECH_PARAMS = frozenset(
    {"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"}
)

TRANSCRIBE_MODELS = frozenset(
    {
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-transcribe-2025-12-15",
        "gpt-4o-transcribe-diarize",
        "gpt-transcribe",
    }
)
AUDIO_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
TRANSCRIPT_FORMATS = {
    "whisper-1": ("json", "text", "srt", "verbose_json", "vtt"),
    "gpt-4o-transcribe-diarize": ("json", "text", "diarized_json"),
}
JSON_ONLY_TRANSCRIBE = ("json",)
UNKNOWN_TRANSCRIPT = "This is the stand-in transcript of an unrecognised clip."

MODERATION_MODELS = {
    "omni-moderation-latest": "omni-moderation-2024-09-26",
    "omni-moderation-2024-09-26": "omni-moderation-2024-09-26",
    "text-moderation-latest": "text-moderation-007",
    "text-moderation-stable": "text-moderation-007",
    "text-moderation-007": "text-moderation-007",
}
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: Categories the omni model also scores on images (the rest are text-only).
IMAGE_MODERATION_CATEGORIES = frozenset(
    {"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence", "violence/graphic"}
)
#: Lower-case phrase -> categories it flags. Copied into each fake; change it with `OpenAIFake.flag`.
DEFAULT_FLAG_WORDS: dict[str, tuple[str, ...]] = {
    "kill": ("violence",),
    "gore": ("violence", "violence/graphic"),
    "hurt myself": ("self-harm", "self-harm/intent"),
    "i will find you": ("harassment", "harassment/threatening"),
}

_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", None),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_ERROR_MESSAGES = {
    429: "Rate limit reached for requests (stand-in). Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}


class OpenAIError(Exception):
    """Raised inside a handler; becomes ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        default_kind, default_code = _ERROR_KINDS.get(status, ("server_error", None))
        self.kind = kind or default_kind
        self.code = code if code is not None else default_code


def error_response(
    status: int,
    message: str | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    err = OpenAIError(
        status,
        message or _ERROR_MESSAGES.get(status, f"Stand-in error {status}."),
        param=param,
        code=code,
        kind=kind,
    )
    body = {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code or None}}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _retry_headers(retry_after_ms: int | None, retry_after: float | None) -> dict[str, str]:
    headers = {}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_ms / 1000)))
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers


def _invalid(param: str, message: str, code: str | None = "invalid_value") -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def _check_params(given: set[str], allowed: frozenset[str]) -> None:
    for name in sorted(given - allowed):
        raise OpenAIError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def _int_param(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid(param, f"Invalid type for '{param}': expected an integer.", "invalid_type") from None


def _float_param(value: Any, param: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _invalid(param, f"Invalid type for '{param}': expected a number.", "invalid_type") from None


def _parse_size(size: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    return (int(match[1]), int(match[2])) if match else None


def _check_image_size(model: str, size: str) -> None:
    if model in DALLE_SIZES:
        allowed: tuple[str, ...] = DALLE_SIZES[model]
    else:
        allowed = GPT_IMAGE_SIZES
        parsed = _parse_size(size)
        if model.startswith("gpt-image-2") and parsed:
            w, h = parsed
            long_side, short_side = max(w, h), min(w, h)
            if w % 16 or h % 16 or short_side < 16 or long_side > 3840 or short_side > 2160:
                raise _invalid(
                    "size", f"Invalid size '{size}': both sides must be multiples of 16, at most 3840x2160."
                )
            if long_side > 3 * short_side:
                raise _invalid(
                    "size", f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1."
                )
            return
    if size not in allowed:
        raise _invalid(
            "size", f"Invalid value: '{size}'. Supported values are: {', '.join(map(repr, allowed))}."
        )


class OpenAIFake(Served):
    """The stand-in. ``OpenAIFake(api_key="sk-test").start()``, then point the SDK at `base_url`.

    `api_keys` holds the accepted Bearer keys; `flag_words` maps lower-case phrases to the
    moderation categories they flag; `transcripts` maps the sha256 of an uploaded clip to the
    text the transcription endpoint returns for it (the known test clip, `media.speech`, is
    always transcribed as `media.SPEECH_TEXT`).
    """

    name = "openai-fake"

    def __init__(self, api_key: str = "sk-test") -> None:
        self.api_key = api_key
        self.api_keys = {api_key}
        self.faults = Faults()
        self.flag_words: dict[str, tuple[str, ...]] = dict(DEFAULT_FLAG_WORDS)
        self.transcripts: dict[str, str] = {}
        self.url = ""
        self._log = CallLog()
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._served: ServedApp | None = None
        self.app = self._make_app()

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's ``base_url``."""
        return f"{self.url}/v1"

    def reset(self) -> None:
        """Forget calls, scripted faults, custom flag words and transcripts; wake stalled requests."""
        self.faults.reset()
        self._log.clear()
        self.api_keys = {self.api_key}
        self.flag_words = dict(DEFAULT_FLAG_WORDS)
        self.transcripts = {}
        with self._lock:
            self._files.clear()

    # -- scripting -----------------------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._log.snapshot()

    def calls_to(self, path: str) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["path"] == path]

    def fail(
        self,
        status: int,
        times: int = 1,
        retry_after_ms: int | None = None,
        *,
        retry_after: float | None = None,
        path: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` authenticated requests (under ``path``, if given) with ``status``.
        A 429 carries ``retry-after-ms`` (50 unless given) and ``Retry-After`` so the SDK's retry
        is fast; other statuses carry them only when given. ``code``/``message`` override the
        error body (e.g. ``code="insufficient_quota"``)."""
        if status == 429 and retry_after_ms is None and retry_after is None:
            retry_after_ms = 50
        body = {"code": code, "message": message}
        self.faults.fail(
            status, times, path=path, headers=_retry_headers(retry_after_ms, retry_after), body=body
        )

    def hang(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        """Stall the next ``times`` requests (under ``path``) for ``seconds`` before answering."""
        self.faults.hang(seconds, times, path=path)

    def outage(self, on: bool = True) -> None:
        """While on, every request gets 503 (before auth)."""
        self.faults.outage = on

    def flag(self, phrase: str, *categories: str) -> None:
        """Make moderation flag inputs containing ``phrase`` (case-insensitive) in ``categories``."""
        unknown = set(categories) - set(MODERATION_CATEGORIES)
        if unknown or not categories:
            raise ValueError(f"unknown or no moderation categories: {sorted(unknown)}")
        self.flag_words[phrase.lower()] = tuple(categories)

    def set_transcript(self, audio: bytes, text: str) -> None:
        self.transcripts[media.digest(audio)] = text

    # -- the app -------------------------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask("openai_fake")
        app.before_request(self._before)
        app.after_request(self._after)
        app.register_error_handler(OpenAIError, self._on_error)
        app.register_error_handler(404, self._on_404)
        app.register_error_handler(405, self._on_404)
        routes: dict[str, Callable[[], Response]] = {
            "/v1/images/generations": self._images_generate,
            "/v1/images/edits": self._images_edit,
            "/v1/audio/speech": self._speech,
            "/v1/audio/transcriptions": self._transcribe,
            "/v1/moderations": self._moderate,
        }
        for rule, view in routes.items():
            app.add_url_rule(rule, view.__name__, view, methods=["POST"])
        app.add_url_rule("/files/<name>", "files", self._file)
        return app

    def _on_error(self, err: OpenAIError) -> Response:
        return error_response(err.status, err.message, param=err.param, code=err.code, kind=err.kind)

    def _on_404(self, err: Exception) -> Response:
        return error_response(404, f"Invalid URL ({request.method} {request.path})")

    def _after(self, response: Response) -> Response:
        entry = g.get("call")
        if entry is not None:
            entry["status"] = response.status_code
        response.headers.setdefault("x-request-id", f"req_{secrets.token_hex(16)}")
        return response

    def _header_fault(self, name: str) -> bool:
        """Whether a ``X-Fake-*`` header fault applies to this attempt."""
        count = request.headers.get(f"{name}-Count")
        if count is None:
            return True
        attempt = int(request.headers.get("X-Stainless-Retry-Count", "0") or 0)
        return attempt < int(count)

    def _before(self) -> Response | None:
        if request.path.startswith("/files/"):
            return None
        g.call = record_request(request)
        self._log.append(g.call)
        if self.faults.outage:
            return error_response(503)
        self.faults.sleep(self.faults.take_hang(request.path))
        if "X-Fake-Sleep" in request.headers and self._header_fault("X-Fake-Sleep"):
            self.faults.sleep(float(request.headers["X-Fake-Sleep"]))
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not key:
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="",
            )
        if key not in self.api_keys:
            shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
            return error_response(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")
        fault = self.faults.take_fail(request.path)
        if fault is not None:
            body = fault.body or {}
            return error_response(
                fault.status, body.get("message"), code=body.get("code"), headers=fault.headers
            )
        if "X-Fake-Fail" in request.headers and self._header_fault("X-Fake-Fail"):
            status = int(request.headers["X-Fake-Fail"])
            ms = request.headers.get("X-Fake-Retry-After-Ms")
            headers = _retry_headers(int(ms) if ms else (50 if status == 429 else None), None)
            return error_response(status, headers=headers)
        return None

    def _json_body(self) -> dict[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise OpenAIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            )
        return body

    def _store(self, data: bytes, content_type: str, suffix: str) -> str:
        name = f"{secrets.token_hex(8)}.{suffix}"
        with self._lock:
            self._files[name] = (data, content_type)
        return f"{request.host_url.rstrip('/')}/files/{name}"

    def _file(self, name: str) -> Response:
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            return Response("not found", status=404)
        data, content_type = stored
        return Response(data, content_type=content_type)

    # -- images --------------------------------------------------------------------------------

    def _image_options(self, params: dict[str, Any], *, edit: bool) -> dict[str, Any]:
        """Validate the shared image parameters; return the resolved options."""
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise OpenAIError(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        gpt_only = [name for name in GPT_ONLY_IMAGE_PARAMS if params.get(name) is not None]
        default_model = "gpt-image-1.5" if edit else ("gpt-image-1" if gpt_only else "dall-e-2")
        model = params.get("model") or default_model
        if model not in IMAGE_MODELS or (edit and model == "dall-e-3"):
            raise _invalid(
                "model", f"Invalid value: '{model}'. Value must be one of the supported image models."
            )
        gpt = model in GPT_IMAGE_MODELS
        limit = 32000 if gpt else (4000 if model == "dall-e-3" else 1000)
        if len(prompt) > limit:
            raise _invalid(
                "prompt",
                f"Invalid 'prompt': string too long. Expected at most {limit} characters.",
                "string_above_max_length",
            )
        if not gpt and gpt_only:
            raise OpenAIError(
                400, f"Unknown parameter: '{gpt_only[0]}'.", param=gpt_only[0], code="unknown_parameter"
            )
        if gpt and params.get("response_format") is not None:
            raise OpenAIError(
                400,
                "Unknown parameter: 'response_format'.",
                param="response_format",
                code="unknown_parameter",
            )
        if params.get("stream") in (True, "true"):
            raise _invalid("stream", "The stand-in does not implement streaming image responses.")
        n = _int_param(params.get("n", 1), "n")
        if not 1 <= n <= 10 or (model == "dall-e-3" and n != 1):
            raise _invalid("n", f"Invalid 'n': {n}. Must be between 1 and 10 (exactly 1 for dall-e-3).")
        size = params.get("size") or ("auto" if gpt else "1024x1024")
        _check_image_size(model, size)
        quality = params.get("quality") or "auto"
        qualities = (
            ("auto", "low", "medium", "high")
            if gpt
            else ("auto", "standard", "hd")
            if model == "dall-e-3"
            else ("auto", "standard")
        )
        if quality not in qualities:
            raise _invalid(
                "quality",
                f"Invalid value: '{quality}'. Supported values are: {', '.join(map(repr, qualities))}.",
            )
        background = params.get("background") or "auto"
        if background not in ("transparent", "opaque", "auto"):
            raise _invalid(
                "background",
                f"Invalid value: '{background}'. Supported values are: 'transparent', 'opaque' and 'auto'.",
            )
        output_format = params.get("output_format") or "png"
        if output_format not in ("png", "jpeg", "webp"):
            raise _invalid(
                "output_format",
                f"Invalid value: '{output_format}'. Supported values are: 'png', 'jpeg' and 'webp'.",
            )
        if background == "transparent" and output_format == "jpeg":
            raise _invalid("background", "Transparent background requires output_format 'png' or 'webp'.")
        if params.get("output_compression") is not None:
            compression = _int_param(params["output_compression"], "output_compression")
            if not 0 <= compression <= 100:
                raise _invalid(
                    "output_compression", "Invalid 'output_compression': must be between 0 and 100."
                )
            if output_format == "png":
                raise _invalid(
                    "output_compression", "output_compression is only supported for 'jpeg' and 'webp'."
                )
        if params.get("moderation") not in (None, "low", "auto"):
            raise _invalid(
                "moderation",
                f"Invalid value: '{params['moderation']}'. Supported values are: 'low' and 'auto'.",
            )
        if params.get("response_format") not in (None, "url", "b64_json"):
            raise _invalid("response_format", "Invalid value. Supported values are: 'url' and 'b64_json'.")
        if params.get("style") not in (None, "vivid", "natural") or (
            params.get("style") and model != "dall-e-3"
        ):
            raise _invalid("style", "Invalid 'style': 'vivid' or 'natural', dall-e-3 only.")
        return {
            "model": model,
            "prompt": prompt,
            "gpt": gpt,
            "n": n,
            "size": size,
            "quality": "medium"
            if quality == "auto" and gpt
            else ("standard" if quality == "auto" else quality),
            "background": "opaque" if background == "auto" else background,
            "output_format": output_format,
            "response_format": params.get("response_format") or ("b64_json" if gpt else "url"),
        }

    def _images_response(
        self, opts: dict[str, Any], size: tuple[int, int], input_images: int = 0
    ) -> Response:
        width, height = size
        fmt = opts["output_format"]
        data = media.image(width, height, fmt, opts["model"], opts["background"] == "transparent")
        items: list[dict[str, Any]] = []
        for _ in range(opts["n"]):
            if opts["response_format"] == "url":
                item: dict[str, Any] = {"url": self._store(data, media.IMAGE_FORMATS[fmt][1], fmt)}
            else:
                item = {"b64_json": base64.b64encode(data).decode()}
            if opts["model"] == "dall-e-3":
                item["revised_prompt"] = opts["prompt"]
            items.append(item)
        body: dict[str, Any] = {"created": int(time.time()), "data": items}
        if opts["gpt"]:
            text_tokens = max(1, len(opts["prompt"].split()))
            image_tokens = 65 * input_images
            output_tokens = 272 * opts["n"]
            body.update(
                background=opts["background"],
                output_format=fmt,
                quality=opts["quality"],
                size=f"{width}x{height}",
                usage={
                    "input_tokens": text_tokens + image_tokens,
                    "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
                    "output_tokens": output_tokens,
                    "total_tokens": text_tokens + image_tokens + output_tokens,
                },
            )
        return jsonify(body)

    def _images_generate(self) -> Response:
        params = self._json_body()
        _check_params(set(params), GENERATE_PARAMS)
        opts = self._image_options(params, edit=False)
        parsed = _parse_size(opts["size"])
        return self._images_response(opts, parsed or (1024, 1024))

    def _images_edit(self) -> Response:
        if not request.mimetype.startswith("multipart/form-data"):
            raise OpenAIError(400, "Invalid Content-Type header, expected multipart/form-data.")
        _check_params(set(request.form) | set(request.files), EDIT_PARAMS)
        params: dict[str, Any] = request.form.to_dict()
        opts = self._image_options(params, edit=True)
        uploads = request.files.getlist("image") + request.files.getlist("image[]")
        if not uploads:
            raise OpenAIError(
                400, "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        limit = 16 if opts["gpt"] else 1
        if len(uploads) > limit:
            raise _invalid("image", f"Too many images: at most {limit} for {opts['model']}.")
        images = [_open_image(upload, "image") for upload in uploads]
        if "mask" in request.files:
            mask = _open_image(request.files["mask"], "mask")
            if mask.format != "PNG" or "A" not in mask.getbands():
                raise _invalid(
                    "mask",
                    "Invalid mask image format - mask image missing alpha channel.",
                    "invalid_image_format",
                )
            if mask.size != images[0].size:
                raise _invalid(
                    "mask",
                    "Invalid mask image: mask and image must have the same dimensions.",
                    "invalid_image_dimensions",
                )
        fidelity = params.get("input_fidelity")
        if fidelity is not None and (fidelity not in ("high", "low") or opts["model"] == "gpt-image-1-mini"):
            raise _invalid("input_fidelity", f"Invalid 'input_fidelity' for {opts['model']}: '{fidelity}'.")
        size = _parse_size(opts["size"])
        if size is None:  # auto: follow the first input's orientation, like the GPT image models
            w, h = images[0].size
            size = (1536, 1024) if w > h * 1.2 else (1024, 1536) if h > w * 1.2 else (1024, 1024)
        return self._images_response(opts, size, input_images=len(images))

    # -- audio ---------------------------------------------------------------------------------

    def _speech(self) -> Response:
        params = self._json_body()
        _check_params(set(params), SPEECH_PARAMS)
        for name in ("model", "input", "voice"):
            if not params.get(name):
                raise OpenAIError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        model = params["model"]
        if model not in SPEECH_MODELS:
            raise _invalid(
                "model",
                f"Invalid value: '{model}'. Supported values are: {', '.join(sorted(SPEECH_MODELS))}.",
            )
        if not isinstance(params["input"], str) or len(params["input"]) > 4096:
            raise _invalid(
                "input",
                "Invalid 'input': string too long. Expected at most 4096 characters.",
                "string_above_max_length",
            )
        voice = params["voice"]
        if not (
            voice in VOICES
            if isinstance(voice, str)
            else isinstance(voice, dict) and isinstance(voice.get("id"), str)
        ):
            raise _invalid(
                "voice", f"Invalid value: '{voice}'. Supported values are: {', '.join(sorted(VOICES))}."
            )
        tts1 = model.startswith("tts-1")
        if params.get("instructions") and tts1:
            raise _invalid(
                "instructions",
                f"Instructions are not supported with the model {model}.",
                "unsupported_parameter",
            )
        fmt = params.get("response_format") or "mp3"
        if fmt not in media.AUDIO_FORMATS:
            raise _invalid(
                "response_format",
                f"Invalid value: '{fmt}'. Supported values are: {', '.join(media.AUDIO_FORMATS)}.",
            )
        speed = _float_param(params.get("speed", 1.0), "speed")
        if not 0.25 <= speed <= 4.0:
            raise _invalid("speed", f"Invalid 'speed': {speed}. Must be between 0.25 and 4.0.")
        stream_format = params.get("stream_format") or "audio"
        if stream_format not in ("audio", "sse") or (stream_format == "sse" and tts1):
            raise _invalid("stream_format", f"Invalid 'stream_format' for {model}: '{stream_format}'.")
        if stream_format == "sse":
            raise _invalid("stream_format", "The stand-in does not implement SSE speech streaming.")
        return Response(media.speech(fmt), content_type=media.AUDIO_FORMATS[fmt][1])

    def _transcribe(self) -> Response:
        if not request.mimetype.startswith("multipart/form-data"):
            raise OpenAIError(400, "Invalid Content-Type header, expected multipart/form-data.")
        params = request.form.to_dict()
        upload = request.files.get("file")
        if upload is None:
            raise OpenAIError(
                400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
            )
        model = params.get("model")
        if not model:
            raise OpenAIError(
                400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
            )
        if model not in TRANSCRIBE_MODELS:
            raise _invalid(
                "model",
                f"Invalid value: '{model}'. Supported values are: {', '.join(sorted(TRANSCRIBE_MODELS))}.",
            )
        fmt = params.get("response_format") or "json"
        allowed = TRANSCRIPT_FORMATS.get(model, JSON_ONLY_TRANSCRIBE)
        if fmt not in allowed:
            raise OpenAIError(
                400,
                f"response_format '{fmt}' is not compatible with model '{model}'. Use one of: {', '.join(allowed)}.",
                param="response_format",
                code="unsupported_value",
            )
        granularities = request.form.getlist("timestamp_granularities[]")
        if granularities and fmt != "verbose_json":
            raise _invalid(
                "timestamp_granularities", "timestamp_granularities requires response_format 'verbose_json'."
            )
        if set(granularities) - {"word", "segment"}:
            raise _invalid("timestamp_granularities", "Supported values are: 'word' and 'segment'.")
        if "temperature" in params and not 0 <= _float_param(params["temperature"], "temperature") <= 1:
            raise _invalid("temperature", "Invalid 'temperature': must be between 0 and 1.")
        if params.get("stream") == "true":
            raise _invalid("stream", "The stand-in does not implement streaming transcriptions.")
        extension = Path(upload.filename or "").suffix.lstrip(".").lower()
        if extension not in AUDIO_EXTENSIONS:
            raise _invalid(
                "file", f"Invalid file format. Supported formats: {list(AUDIO_EXTENSIONS)}", "invalid_value"
            )
        data = upload.read()
        duration = _audio_duration(data, extension)
        if media.is_known_speech(data):
            text = media.SPEECH_TEXT
        else:
            text = self.transcripts.get(media.digest(data), UNKNOWN_TRANSCRIPT)
        return _transcript(model, fmt, text, duration, granularities, params.get("language"))

    # -- moderation ----------------------------------------------------------------------------

    def _moderate(self) -> Response:
        params = self._json_body()
        _check_params(set(params), frozenset({"model", "input"}))
        model = params.get("model") or "omni-moderation-latest"
        if model not in MODERATION_MODELS:
            raise _invalid(
                "model", f"Invalid value: '{model}'. Supported values are: {', '.join(MODERATION_MODELS)}."
            )
        omni = model.startswith("omni")
        raw = params.get("input")
        groups: list[tuple[str, bool]]  # (text, has image) per result
        if isinstance(raw, str):
            groups = [(raw, False)]
        elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
            groups = [(item, False) for item in raw]
        elif isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
            if not omni:
                raise _invalid("input", f"Multi-modal input is not supported by {model}.")
            texts = [item.get("text", "") for item in raw if item.get("type") == "text"]
            has_image = any(item.get("type") == "image_url" for item in raw)
            groups = [(" ".join(texts), has_image)]
        else:
            raise OpenAIError(
                400, "Missing or invalid required parameter: 'input'.", param="input", code="invalid_type"
            )
        results = [self._moderation_result(text, has_image, omni) for text, has_image in groups]
        return jsonify(
            {"id": f"modr-{secrets.token_hex(12)}", "model": MODERATION_MODELS[model], "results": results}
        )

    def _moderation_result(self, text: str, has_image: bool, omni: bool) -> dict[str, Any]:
        lowered = text.lower()
        hits = {
            category for phrase, cats in self.flag_words.items() if phrase in lowered for category in cats
        }
        names = [name for name in MODERATION_CATEGORIES if omni or not name.startswith("illicit")]
        result: dict[str, Any] = {
            "flagged": bool(hits),
            "categories": {name: name in hits for name in names},
            "category_scores": {name: 0.97 if name in hits else 0.0001 for name in names},
        }
        if omni:
            result["category_applied_input_types"] = {
                name: (["text"] if text else [])
                + (["image"] if has_image and name in IMAGE_MODERATION_CATEGORIES else [])
                for name in names
            }
        return result


def _open_image(upload: FileStorage, param: str) -> Image.Image:
    data = upload.read()
    upload.stream.seek(0)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError):
        raise _invalid(
            param,
            f"Invalid image file or mode for '{param}'. Supported formats: png, webp, jpeg.",
            "invalid_image_format",
        ) from None
    if img.format not in ("PNG", "WEBP", "JPEG"):
        raise _invalid(
            param,
            f"Invalid image format for '{param}': {img.format}. Supported: png, webp, jpeg.",
            "invalid_image_format",
        )
    return img


def _audio_duration(data: bytes, extension: str) -> float:
    with tempfile.NamedTemporaryFile(suffix=f".{extension}") as tmp:
        tmp.write(data)
        tmp.flush()
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", tmp.name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    try:
        return float(probe.stdout.strip())
    except ValueError:
        raise _invalid("file", "Audio file might be corrupted or unsupported", "invalid_value") from None


def _timestamp(seconds: float, sep: str) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}{sep}{millis % 1000:03d}"


def _transcript(
    model: str, fmt: str, text: str, duration: float, granularities: list[str], language: str | None
) -> Response:
    if fmt == "text":
        return Response(text, content_type="text/plain; charset=utf-8")
    if fmt == "srt":
        body = f"1\n{_timestamp(0, ',')} --> {_timestamp(duration, ',')}\n{text}\n\n"
        return Response(body, content_type="text/plain; charset=utf-8")
    if fmt == "vtt":
        body = f"WEBVTT\n\n{_timestamp(0, '.')} --> {_timestamp(duration, '.')}\n{text}\n\n"
        return Response(body, content_type="text/vtt; charset=utf-8")
    usage: dict[str, Any]
    if model == "whisper-1":
        usage = {"type": "duration", "seconds": math.ceil(duration)}
    else:
        out_tokens = len(text.split())
        in_tokens = max(1, round(duration * 10))
        usage = {
            "type": "tokens",
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "total_tokens": in_tokens + out_tokens,
        }
    if fmt == "json":
        return jsonify({"text": text, "usage": usage})
    if fmt == "diarized_json":
        segment = {
            "id": "seg_0",
            "type": "transcript.text.segment",
            "speaker": "A",
            "start": 0.0,
            "end": duration,
            "text": text,
        }
        return jsonify(
            {"task": "transcribe", "text": text, "duration": duration, "segments": [segment], "usage": usage}
        )
    words = text.split()
    verbose: dict[str, Any] = {
        "task": "transcribe",
        "language": {"en": "english"}.get(language or "en", language),
        "duration": duration,
        "text": text,
        "usage": usage,
    }
    if not granularities or "segment" in granularities:
        verbose["segments"] = [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": duration,
                "text": text,
                "tokens": list(range(50364, 50364 + len(words))),
                "temperature": 0.0,
                "avg_logprob": -0.2,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.01,
            }
        ]
    if "word" in granularities:
        step = duration / max(1, len(words))
        verbose["words"] = [
            {"word": word.strip(".,"), "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
            for i, word in enumerate(words)
        ]
    return jsonify(verbose)
