"""fal.ai through ``fal-client``: its queue protocol (submit, status with queue position,
result, cancel) for video, speech, transcription and music models.

``fal_client`` reads its hosts when it is imported and builds ``https://`` URLs; to point it
at another queue (a stand-in, a proxy), `configure` sets its module-level URLs, once per
process, from settings. Input files (an image for image-to-video, audio to transcribe) go up
through fal's storage, since fal cannot reach faktry's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fal_client
import fal_client.client as fal_module
import httpx

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
    download,
)

_MODERATED = {"content_policy_violation", "content_moderated", "nsfw_content_detected"}


def configure(*, queue_url: str = "", rest_url: str = "", cdn_url: str = "") -> None:
    """Point fal_client's module-level URLs elsewhere (read by each call)."""
    if queue_url:
        fal_module.QUEUE_URL_FORMAT = queue_url.rstrip("/") + "/"
        fal_module.RUN_URL_FORMAT = queue_url.rstrip("/") + "/_run/"
    if rest_url:
        fal_module.REST_URL = rest_url.rstrip("/")
    if cdn_url:
        fal_module.CDN_URL = cdn_url.rstrip("/")


class FalProvider:
    name = "fal"
    queued = True

    def __init__(self, *, key: str, timeout: float = 120.0, max_output_bytes: int = 2 * 1024**3) -> None:
        self._key = key
        self._timeout = timeout
        self._max_output_bytes = max_output_bytes
        self._clients: dict[int, fal_client.SyncClient] = {}

    @property
    def client(self) -> fal_client.SyncClient:
        pid = os.getpid()  # built after fork, once per process
        if pid not in self._clients:
            self._clients.clear()
            self._clients[pid] = fal_client.SyncClient(key=self._key, default_timeout=self._timeout)
        return self._clients[pid]

    def run(self, request: Request) -> Finished:
        raise NotImplementedError("fal runs through its queue: submit, then poll")

    def submit(self, request: Request) -> Submitted:
        endpoint, arguments = self._arguments(request)
        try:
            handle = self.client.submit(endpoint, arguments=arguments)
        except Exception as err:
            raise translate(err) from err
        state = {
            "endpoint": endpoint,
            "response_url": handle.response_url,
            "status_url": handle.status_url,
            "cancel_url": handle.cancel_url,
        }
        return Submitted(handle.request_id, state)

    def poll(self, request: Request, submitted: Submitted) -> Pending | Finished:
        handle = self._handle(submitted)
        try:
            status = handle.status()
        except Exception as err:
            raise translate(err) from err
        if isinstance(status, fal_client.Queued):
            return Pending("IN_QUEUE", queue_position=status.position)
        if isinstance(status, fal_client.InProgress):
            return Pending("IN_PROGRESS", queue_position=0)
        assert isinstance(status, fal_client.Completed)
        if status.error or status.error_type:
            raise _from_error_type(status.error_type, status.error or "the request failed")
        try:
            response = self.client._client.get(submitted.state["response_url"], timeout=self._timeout)
            fal_module._raise_for_status(response)
            output = response.json()
        except Exception as err:
            raise translate(err) from err
        return self._finished(request, submitted, output)

    def cancel(self, submitted: Submitted) -> None:
        try:
            self._handle(submitted).cancel()
        except fal_client.client.FalClientHTTPError as err:
            if err.status_code not in (400, 404):  # already completed or gone: nothing to cancel
                raise translate(err) from err
        except Exception as err:
            raise translate(err) from err

    def _handle(self, submitted: Submitted) -> fal_client.SyncRequestHandle:
        s = submitted.state
        return fal_client.SyncRequestHandle(
            request_id=submitted.request_id,
            response_url=s["response_url"],
            status_url=s["status_url"],
            cancel_url=s["cancel_url"],
            client=self.client._client,
        )

    def _upload(self, path: Path) -> str:
        try:
            return str(self.client.upload_file(path))
        except Exception as err:
            raise translate(err) from err

    def _arguments(self, request: Request) -> tuple[str, dict[str, Any]]:
        ep = request.model.endpoint
        args = dict(request.params)
        endpoint = ep["text"]
        if request.job_type == "video.generate":
            args["prompt"] = request.prompt
            if "file_id" in request.files:
                endpoint = ep["image"]
                args[ep["image_field"]] = self._upload(request.files["file_id"])
                for name in request.model.image_only_drop:
                    args.pop(name, None)
        elif request.job_type == "speech.synthesize":
            args[ep.get("text_field", "text")] = request.prompt
        elif request.job_type == "speech.transcribe":
            args[ep.get("audio_field", "audio_url")] = self._upload(request.files["file_id"])
        elif request.job_type == "music.generate":
            args["prompt"] = request.prompt
            if request.extra.get("lyrics"):
                args["lyrics"] = request.extra["lyrics"]
        else:
            args["prompt"] = request.prompt
        return endpoint, args

    def _finished(self, request: Request, submitted: Submitted, output: dict[str, Any]) -> Finished:
        result: dict[str, Any] = {"provider_request_id": submitted.request_id}
        for key in ("seed", "text", "language_code"):
            if key in output:
                result[key] = output[key]
        files: list[Output] = []
        for name in ("video", "audio"):
            item = output.get(name)
            if isinstance(item, dict) and item.get("url"):
                files.append(self._fetch(request, name, item))
        for i, item in enumerate(output.get("images") or []):
            if isinstance(item, dict) and item.get("url"):
                files.append(self._fetch(request, "image" if i == 0 else f"image{i}", item))
        if not files and "text" not in result:
            raise ProviderError("fal returned no output")
        return Finished(files, result)

    def _fetch(self, request: Request, name: str, item: dict[str, Any]) -> Output:
        filename = Path(str(item.get("file_name") or "")).name
        suffix = Path(filename).suffix or _suffix(str(item.get("content_type") or ""))
        path = download(
            str(item["url"]),
            request.work_dir / f"{name}{suffix}",
            max_bytes=self._max_output_bytes,
            timeout=self._timeout,
        )
        return Output(name, path)


def _suffix(content_type: str) -> str:
    return {
        "video/mp4": ".mp4",
        "audio/mpeg": ".mp3",
        "audio/wav": ".wav",
        "audio/x-wav": ".wav",
        "image/png": ".png",
        "image/jpeg": ".jpg",
        "image/webp": ".webp",
    }.get(content_type, ".bin")


def _from_error_type(error_type: str | None, message: str) -> Exception:
    if error_type in _MODERATED:
        return ProviderModerated("fal's moderation refused the request")
    if error_type and (
        error_type.startswith("runner_") or error_type in ("request_timeout", "internal_error")
    ):
        failed = ProviderError(f"fal failed ({error_type})")
        failed.upstream_done = True
        return failed
    return ProviderRejected(f"fal refused the request ({error_type or message[:200]})")


def translate(err: Exception) -> Exception:
    if isinstance(err, fal_client.client.FalClientHTTPError):
        detail = err.message
        error_type = err.error_type
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            error_type = error_type or str(detail[0].get("type") or "")
            loc = ".".join(str(x) for x in detail[0].get("loc", [])[1:])
            detail = f"{loc}: {detail[0].get('msg', '')}".strip(": ")
        if err.status_code == 429:
            retry = err.response_headers.get("retry-after")
            return ProviderRateLimited(
                "fal is rate limiting requests", retry_after=float(retry) if retry else None
            )
        if err.status_code >= 500 or err.status_code in (401, 403, 408):
            return ProviderError(f"fal failed ({err.status_code})")
        if error_type in _MODERATED:
            return ProviderModerated("fal's moderation refused the request")
        return ProviderRejected(f"fal refused the request: {str(detail)[:200]}")
    if isinstance(err, fal_client.client.FalClientTimeoutError | httpx.TimeoutException):
        return ProviderTimeout("fal did not answer in time")
    if isinstance(err, httpx.HTTPError | OSError):
        return ProviderError("fal could not be reached")
    if isinstance(err, ProviderError | ProviderRejected | ProviderModerated):
        return err
    return ProviderError(f"fal failed: {type(err).__name__}")
