"""OpenAI through the ``openai`` SDK: images (generate, edit), speech, transcription and the
moderation endpoint.

These calls are synchronous: there is no request id before the answer. If a worker dies
during one, the job runs again as a new attempt and OpenAI may be billed for both calls;
the tenant is charged once (the hold is captured once), and attempts are bounded by
``FAKTRY_MAX_RETRIES``. The SDK retries 429 and 5xx twice itself, honouring short
Retry-After headers; beyond that the job retries with backoff.
"""

from __future__ import annotations

import base64
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import openai

from faktry.errors import TransientError
from pipelines.providers.base import (
    Finished,
    Output,
    Pending,
    ProviderError,
    ProviderModerated,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    Request,
    Submitted,
)

MODERATION_MODEL = "omni-moderation-latest"


class OpenAIProvider:
    name = "openai"
    queued = False

    def __init__(
        self, *, api_key: str, base_url: str = "", timeout: float = 120.0, max_retries: int = 2
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url or None
        self._timeout = timeout
        self._max_retries = max_retries
        self._pid = 0

    @cached_property
    def _client_cache(self) -> dict[int, openai.OpenAI]:
        return {}

    @property
    def client(self) -> openai.OpenAI:
        # Built after fork, once per process.
        pid = os.getpid()
        if pid not in self._client_cache:
            self._client_cache.clear()
            self._client_cache[pid] = openai.OpenAI(
                api_key=self._api_key,
                base_url=self._base_url,
                timeout=self._timeout,
                max_retries=self._max_retries,
            )
        return self._client_cache[pid]

    def run(self, request: Request) -> Finished:
        try:
            if request.job_type in ("image.generate", "image.edit"):
                return self._image(request)
            if request.job_type == "speech.synthesize":
                return self._speech(request)
            if request.job_type == "speech.transcribe":
                return self._transcribe(request)
        except openai.APIError as err:
            raise translate(err) from err
        raise ProviderRejected(f"OpenAI does not run {request.job_type}")

    def submit(self, request: Request) -> Submitted:
        raise NotImplementedError("OpenAI calls are synchronous")

    def poll(self, request: Request, submitted: Submitted) -> Pending | Finished:
        raise NotImplementedError("OpenAI calls are synchronous")

    def cancel(self, submitted: Submitted) -> None:
        return None

    def _image(self, request: Request) -> Finished:
        p = request.params
        model = request.model.endpoint["model"]
        fmt = p.get("output_format", "png")
        options: dict[str, Any] = {"size": p.get("size", "1024x1024"), "quality": p.get("quality", "auto")}
        options["background"] = p.get("background", "auto")
        options["output_format"] = fmt
        if request.job_type == "image.edit":
            with request.files["file_id"].open("rb") as image:
                extra = {}
                if "mask_file_id" in request.files:
                    extra["mask"] = request.files["mask_file_id"].open("rb")
                edit: Any = self.client.images.edit  # options are built per model: too dynamic for overloads
                try:
                    answer = edit(
                        model=model, image=image, prompt=request.prompt or "", n=1, **options, **extra
                    )
                finally:
                    for fh in extra.values():
                        fh.close()
        else:
            answer = self.client.images.generate(model=model, prompt=request.prompt or "", n=1, **options)
        data = answer.data[0] if answer.data else None
        if data is None or not data.b64_json:
            raise ProviderError("OpenAI returned no image")
        path = request.work_dir / f"image.{'jpg' if fmt == 'jpeg' else fmt}"
        path.write_bytes(base64.b64decode(data.b64_json))
        return Finished([Output("image", path)], {"revised_prompt": getattr(data, "revised_prompt", None)})

    def _speech(self, request: Request) -> Finished:
        p = request.params
        fmt = p.get("response_format", "mp3")
        options: dict[str, Any] = {"voice": p.get("voice", "alloy"), "response_format": fmt}
        if "speed" in p:
            options["speed"] = p["speed"]
        if p.get("instructions"):
            options["instructions"] = p["instructions"]
        path = request.work_dir / f"speech.{ {'opus': 'ogg', 'aac': 'm4a'}.get(fmt, fmt) }"
        with self.client.audio.speech.with_streaming_response.create(
            model=request.model.endpoint["model"], input=request.prompt or "", **options
        ) as response:
            response.stream_to_file(path)
        return Finished([Output("audio", path)])

    def _transcribe(self, request: Request) -> Finished:
        p = request.params
        source = request.files["file_id"]
        options: dict[str, Any] = {}
        if p.get("language"):
            options["language"] = p["language"]
        if p.get("prompt"):
            options["prompt"] = p["prompt"]
        with source.open("rb") as fh:
            answer = self.client.audio.transcriptions.create(
                model=request.model.endpoint["model"],
                file=(Path(source).name, fh),
                response_format="json",
                **options,
            )
        return Finished([], {"text": answer.text, "language": p.get("language")})

    def moderate(self, text: str) -> tuple[bool, str | None, float]:
        """For `pipelines.moderation.Moderator`: (flagged, top category, its score)."""
        try:
            answer = self.client.with_options(max_retries=0).moderations.create(
                model=MODERATION_MODEL, input=text
            )
        except openai.APIError as err:
            raise TransientError("the moderation endpoint failed") from err
        result = answer.results[0]
        scores = result.category_scores.model_dump(by_alias=True) if result.category_scores else {}
        flagged_categories = [k for k, v in (result.categories.model_dump(by_alias=True) or {}).items() if v]
        top = max(flagged_categories or scores, key=lambda k: scores.get(k) or 0.0, default=None)
        return bool(result.flagged), top, float(scores.get(top) or 0.0) if top else 0.0


def translate(err: openai.APIError) -> Exception:
    if isinstance(err, openai.RateLimitError):
        return ProviderRateLimited("OpenAI is rate limiting requests", retry_after=_retry_after(err))
    if isinstance(err, openai.APITimeoutError):
        return ProviderTimeout("OpenAI did not answer in time")
    if isinstance(err, openai.APIConnectionError):
        return ProviderError("OpenAI could not be reached")
    if isinstance(err, openai.InternalServerError):
        return ProviderError(f"OpenAI failed ({err.status_code})")
    if isinstance(err, openai.BadRequestError | openai.UnprocessableEntityError):
        code = str(getattr(err, "code", "") or "")
        if "moderation" in code or "content_policy" in code or "safety" in code:
            return ProviderModerated("OpenAI's moderation refused the request")
        return ProviderRejected(f"OpenAI refused the request: {_message(err)}")
    if isinstance(err, openai.APIStatusError):
        return ProviderError(f"OpenAI answered {err.status_code}")
    return ProviderError("OpenAI failed")


def _retry_after(err: openai.APIStatusError) -> float | None:
    headers = err.response.headers if err.response is not None else {}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def _message(err: openai.APIError) -> str:
    body = err.body if isinstance(err.body, dict) else {}
    return str(body.get("message") or err.message)[:300]
