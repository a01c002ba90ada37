"""A local stand-in for fal.ai's queue, served over loopback (plain http).

`FalFake` speaks the queue protocol the real ``fal_client`` uses (RECIPES §2, §10 2.2-2.5):

- ``POST /{model_id}`` (``Authorization: Key …``) accepts a job and answers
  ``{request_id, status: "IN_QUEUE", queue_position, response_url, status_url, cancel_url}``, the
  URLs built as ``{url}/{owner}/{app}/requests/{id}`` (sub-path dropped, ``workflows/``/``comfy/``
  kept). Like fal, the submit does **not** validate the input: an invalid job goes
  IN_QUEUE → IN_PROGRESS → COMPLETED and its result GET answers 422 ``{"detail": [{loc, msg,
  type, url, input}]}``.
- ``GET …/status?logs=…`` walks IN_QUEUE (``queue_position``, HTTP 202) for `queue_polls` polls,
  IN_PROGRESS (``logs``, 202) for `progress_polls` polls, then COMPLETED (``logs``, ``metrics``,
  200). ``GET …/requests/{id}`` returns the model's output JSON, with media served by the fake at
  ``/files/<name>`` (real MP4/MP3/WAV/PNG/JPEG bytes, ``file_size`` equal to the bytes served).
- ``PUT …/cancel`` answers 202 ``{"status": "CANCELLATION_REQUESTED"}``; the job ends CANCELLED
  (see `FalFake.cancel_job`): its status reads COMPLETED with ``error_type: "request_cancelled"``
  (fal_client raises ValueError on any other status word) and its result answers 400.
- ``POST /_run/{model_id}`` is the sync host (``fal_client.run``); ``/storage/auth/token`` and
  ``/files/upload`` (and the ``/storage/upload/initiate`` fallback) take ``fal_client.upload``.
- ``?fal_webhook=<url>`` POSTs ``{request_id, gateway_request_id, status: "OK"|"ERROR", payload,
  error?}`` to that URL when the job completes (`webhooks` records the deliveries).

`point_fal_client_at` points the real client at a fake (RECIPES Recipe B).
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask, Response, g, has_request_context, jsonify, request

from tests.standins import media
from tests.standins.fal_specs import MODELS, ModelSpec, error, validate
from tests.standins.faults import CallLog, Faults, record_request
from tests.standins.server import Served, ServedApp

NAMESPACES = ("workflows", "comfy")

#: fal's request-level error types (flat ``{"detail": str, "error_type"}`` body) and their status.
REQUEST_ERRORS = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_incomplete_response": 502,
    "runner_server_error": 500,
    "client_disconnected": 499,
    "client_cancelled": 499,
    "bad_request": 400,
    "internal_error": 500,
}
#: Model-level error types that are not 422 (the rest, e.g. content_policy_violation, are 422).
MODEL_ERROR_STATUS = {
    "internal_server_error": 500,
    "generation_timeout": 504,
    "downstream_service_unavailable": 503,
}
MODEL_ERROR_MESSAGES = {
    "content_policy_violation": "The content was flagged by a content checker.",
    "file_download_error": "Failed to download the file. Please check if the URL is accessible.",
    "internal_server_error": "Internal server error",
    "generation_timeout": "Generation timed out",
}
IMAGE_SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
    "auto": (1024, 768),
}
#: Tiny frame sizes per aspect ratio, to keep generated clips fast.
VIDEO_FRAMES = {
    "16:9": (320, 180),
    "9:16": (180, 320),
    "1:1": (240, 240),
    "4:3": (320, 240),
    "3:4": (240, 320),
}
INGRESS_BODY = "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>"


def app_base(model_id: str) -> str:
    """``fal-ai/kling-video/v2.1/standard/text-to-video`` -> ``fal-ai/kling-video``."""
    parts = model_id.strip("/").split("/")
    keep = 3 if parts[0] in NAMESPACES else 2
    return "/".join(parts[:keep])


@dataclass
class Job:
    """One queued request. ``state`` is IN_QUEUE, IN_PROGRESS, COMPLETED or CANCELLED."""

    id: str
    model_id: str
    base: str
    input: Any
    queue_polls: int
    progress_polls: int
    webhook_url: str | None = None
    polls: int = 0
    state: str = "IN_QUEUE"
    #: (HTTP status, body, headers) the result GET answers with when the job failed.
    failure: tuple[int, dict[str, Any], dict[str, str]] | None = None
    output: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    claimed: bool = False


def _log_line(message: str) -> dict[str, Any]:
    return {"message": message, "level": "INFO", "source": "USER", "timestamp": datetime.now(UTC).isoformat()}


def _seconds(value: Any) -> float:
    """Kling ``"5"``, Veo ``"8s"``, LTX ``6`` -> seconds."""
    return float(str(value).rstrip("s"))


def _failure(
    error_type: str, detail: str | None, job_input: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    if error_type in REQUEST_ERRORS:
        body = {"detail": detail or error_type.replace("_", " ").capitalize(), "error_type": error_type}
        return REQUEST_ERRORS[error_type], body, {"X-Fal-Error-Type": error_type}
    status = MODEL_ERROR_STATUS.get(error_type, 422)
    prompt = job_input.get("prompt") if isinstance(job_input, dict) else None
    loc = ["prompt"] if error_type == "content_policy_violation" and prompt else []
    message = detail or MODEL_ERROR_MESSAGES.get(error_type, error_type.replace("_", " ").capitalize())
    return (
        status,
        {"detail": [error(loc, message, error_type, prompt if loc else None)]},
        {"X-Fal-Retryable": "false"},
    )


class FalFake(Served):
    """The stand-in. ``FalFake(key="id:secret").start()``; then `point_fal_client_at` its `url`.

    ``keys`` holds the accepted keys (``Authorization: Key <key>``); ``models`` maps the known
    endpoint ids to their `ModelSpec` (an unknown id gets 404 at submit; add more with
    `register_model`). `queue_polls` / `progress_polls` apply to jobs submitted afterwards.
    """

    name = "fal-fake"

    def __init__(self, key: str = "id:secret", *, queue_polls: int = 1, progress_polls: int = 1) -> None:
        self.key = key
        self.keys = {key}
        self.queue_polls = queue_polls
        self.progress_polls = progress_polls
        self._initial_polls = (queue_polls, progress_polls)
        self._outage_ingress = False
        self.models: dict[str, ModelSpec] = dict(MODELS)
        self.faults = Faults()
        self.url = ""
        self.submits: list[tuple[str, Any]] = []
        self.status_polls = 0
        self.cancels: list[str] = []
        self.webhooks: list[dict[str, Any]] = []
        self._log = CallLog()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._tokens: set[str] = set()
        self._submit_faults: list[list[Any]] = []
        self._next_failures: list[tuple[str, str | None]] = []
        self._served: ServedApp | None = None
        self.app = self._make_app()

    def reset(self) -> None:
        """Forget jobs, files, counters and scripted faults; restore the default settings."""
        self.faults.reset()
        self._log.clear()
        with self._lock:
            self.keys = {self.key}
            self.queue_polls, self.progress_polls = self._initial_polls
            self._outage_ingress = False
            self.models = dict(MODELS)
            self.submits.clear()
            self.status_polls = 0
            self.cancels.clear()
            self.webhooks.clear()
            self._jobs.clear()
            self._files.clear()
            self._tokens.clear()
            self._submit_faults.clear()
            self._next_failures.clear()

    # -- scripting and inspection --------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._log.snapshot()

    @property
    def jobs(self) -> dict[str, Job]:
        with self._lock:
            return dict(self._jobs)

    def job(self, request_id: str) -> Job:
        with self._lock:
            return self._jobs[request_id]

    def register_model(self, model_id: str, spec: ModelSpec) -> None:
        self.models[model_id] = spec

    def fail_next_submit(
        self,
        status: int,
        times: int = 1,
        *,
        error_type: str | None = None,
        detail: str | None = None,
        ingress: bool = False,
    ) -> None:
        """Answer the next ``times`` submits (queue or run) with ``status``. With ``ingress`` the
        body is nginx's HTML and has no ``x-fal-request-id``, which fal_client retries for 502/503/504
        (up to 10 attempts with backoff: patch ``fal_client.client.BASE_DELAY`` to keep tests fast).
        fal_client also retries 408/409/429 that way."""
        with self._lock:
            self._submit_faults.append([status, times, error_type, detail, ingress])

    def fail_request(
        self,
        error_type: str = "runner_server_error",
        *,
        detail: str | None = None,
        request_id: str | None = None,
        times: int = 1,
    ) -> None:
        """Make a job end in error: ``request_id``'s, else the next ``times`` submitted jobs.
        Request-level types (`REQUEST_ERRORS`, e.g. ``request_timeout``) answer the result GET with
        their status and ``{"detail": str, "error_type"}`` + ``X-Fal-Error-Type``, and their
        COMPLETED status carries ``error``/``error_type``; model-level types (e.g.
        ``content_policy_violation``, ``file_download_error``) answer 422 (500/504 for a few) with
        ``{"detail": [{loc, msg, type, url, input?}]}``."""
        with self._lock:
            if request_id is None:
                self._next_failures.extend([(error_type, detail)] * times)
                return
            job = self._jobs[request_id]
            job.failure = _failure(error_type, detail, job.input)

    def outage(self, on: bool = True, *, ingress: bool = False) -> None:
        """While on, every queue/run/storage request gets 503. By default the body is JSON
        ``{"detail", "error_type": "runner_scheduling_failure"}``, which fal_client raises at once;
        with ``ingress`` it is nginx's HTML page, which fal_client retries (see `fail_next_submit`)."""
        self.faults.outage = on
        self._outage_ingress = ingress

    def hang(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        """Stall the next ``times`` requests (whose path starts with ``path``) for ``seconds``."""
        self.faults.hang(seconds, times, path=path)

    def complete(self, request_id: str | None = None) -> None:
        """Finish ``request_id`` (or every unfinished job) now, as if enough polls had happened;
        webhooks fire. For clients that wait for a webhook instead of polling."""
        with self._lock:
            jobs = [self._jobs[request_id]] if request_id else list(self._jobs.values())
        for job in jobs:
            if job.state in ("IN_QUEUE", "IN_PROGRESS"):
                self._finish(job, self._host() if has_request_context() else self.url)

    def cancel_job(self, request_id: str) -> None:
        """End ``request_id`` as CANCELLED (what ``PUT …/cancel`` does to an unfinished job)."""
        with self._lock:
            job = self._jobs[request_id]
            job.state = "CANCELLED"
            job.claimed = True
            job.failure = (400, {"detail": "Request was cancelled", "error_type": "request_cancelled"}, {})
            job.finished.set()

    # -- the app -------------------------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask("fal_fake")
        app.before_request(self._before)
        app.after_request(self._after)
        app.add_url_rule("/storage/auth/token", "token", self._token, methods=["POST"])
        app.add_url_rule("/storage/upload/initiate", "initiate", self._initiate, methods=["POST"])
        app.add_url_rule("/_gcs/<name>", "gcs_put", self._gcs_put, methods=["PUT"])
        app.add_url_rule("/files/upload", "cdn_upload", self._cdn_upload, methods=["POST"])
        app.add_url_rule("/files/<path:name>", "files", self._file, methods=["GET"])
        app.add_url_rule("/_run/<path:model_id>", "run", self._run, methods=["POST"])
        app.add_url_rule("/<path:base>/requests/<rid>/status", "status", self._status, methods=["GET"])
        app.add_url_rule("/<path:base>/requests/<rid>/cancel", "cancel", self._cancel, methods=["PUT"])
        app.add_url_rule("/<path:base>/requests/<rid>", "result", self._result, methods=["GET"])
        app.add_url_rule("/<path:model_id>", "submit", self._submit, methods=["POST"])
        return app

    def _host(self) -> str:
        return request.host_url.rstrip("/")

    def _before(self) -> Response | None:
        if request.method == "GET" and request.path.startswith("/files/"):
            return None
        g.call = record_request(request)
        self._log.append(g.call)
        if self.faults.outage:
            if self._outage_ingress:
                return Response(INGRESS_BODY, status=503, content_type="text/html")
            body = {"detail": "Service temporarily unavailable", "error_type": "runner_scheduling_failure"}
            return _json(body, 503, {"X-Fal-Error-Type": "runner_scheduling_failure"})
        self.faults.sleep(self.faults.take_hang(request.path))
        if request.path == "/files/upload" or request.path.startswith("/_gcs/"):
            return self._check_cdn_token()
        auth = request.headers.get("Authorization", "")
        if not auth:
            return _json({"detail": "Authentication is required to access this application."}, 401)
        if not auth.startswith("Key ") or auth.removeprefix("Key ").strip() not in self.keys:
            return _json({"detail": "Invalid authentication credentials."}, 401)
        return None

    def _check_cdn_token(self) -> Response | None:
        if request.path.startswith("/_gcs/"):
            return None  # a signed upload URL: no header auth, as on GCS
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            known = token in self._tokens
        return None if scheme == "Bearer" and known else _json({"detail": "Invalid upload token"}, 401)

    def _after(self, response: Response) -> Response:
        entry = g.get("call")
        if entry is not None:
            entry["status"] = response.status_code
        return response

    def _take_submit_fault(self) -> Response | None:
        with self._lock:
            for fault in self._submit_faults:
                status, remaining, error_type, detail, ingress = fault
                if remaining > 0:
                    fault[1] -= 1
                    break
            else:
                return None
        if ingress:
            return Response(
                INGRESS_BODY.replace("503 Service Temporarily Unavailable", f"{status} Error"),
                status=status,
                content_type="text/html",
            )
        body: dict[str, Any] = {"detail": detail or f"Stand-in submit failure {status}"}
        headers = {}
        if error_type:
            body["error_type"] = error_type
            headers["X-Fal-Error-Type"] = error_type
        return _json(body, status, headers)

    # -- queue ---------------------------------------------------------------------------------

    def _urls(self, job: Job) -> dict[str, str]:
        base = f"{self._host()}/{job.base}/requests/{job.id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def _submit(self, model_id: str) -> Response:
        fault = self._take_submit_fault()
        if fault is not None:
            return fault
        if model_id not in self.models:
            return _json({"detail": f"Application '{model_id}' not found"}, 404)
        payload = request.get_json(silent=True)
        job = Job(
            id=str(uuid.uuid4()),
            model_id=model_id,
            base=app_base(model_id),
            input=payload,
            queue_polls=self.queue_polls,
            progress_polls=self.progress_polls,
            webhook_url=request.args.get("fal_webhook"),
        )
        errors = validate(self.models[model_id], payload)
        with self._lock:
            self.submits.append((model_id, payload))
            if errors:
                job.failure = (422, {"detail": errors}, {"X-Fal-Retryable": "false"})
            elif self._next_failures:
                job.failure = _failure(*self._next_failures.pop(0), payload)
            self._jobs[job.id] = job
        body = {
            "request_id": job.id,
            **self._urls(job),
            "status": "IN_QUEUE",
            "queue_position": max(0, job.queue_polls - 1),
        }
        return _json(body, 200, {"x-fal-request-id": job.id})

    def _find(self, base: str, rid: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(rid)
        return job if job is not None and job.base == base else None

    def _status(self, base: str, rid: str) -> Response:
        job = self._find(base, rid)
        if job is None:
            return _json({"detail": "Request not found"}, 404)
        with self._lock:
            self.status_polls += 1
            job.polls += 1
            if job.state in ("IN_QUEUE", "IN_PROGRESS"):
                if job.polls <= job.queue_polls:
                    job.state = "IN_QUEUE"
                elif job.polls <= job.queue_polls + job.progress_polls:
                    if job.state == "IN_QUEUE":
                        job.logs.append(_log_line(f"Starting {job.model_id}"))
                    job.state = "IN_PROGRESS"
                else:
                    job.state = "FINISHING"
        if job.state == "FINISHING":
            self._finish(job, self._host())
        with_logs = request.args.get("logs", "false").lower() in ("1", "true")
        body: dict[str, Any] = {"status": job.state, "request_id": job.id, **self._urls(job)}
        if job.state == "IN_QUEUE":
            body["queue_position"] = job.queue_polls - job.polls
            return _json(body, 202)
        body["logs"] = list(job.logs) if with_logs else None
        if job.state == "IN_PROGRESS":
            return _json(body, 202)
        body["status"] = "COMPLETED"
        body["metrics"] = {"inference_time": 0.01 * (job.queue_polls + job.progress_polls)}
        if job.failure is not None:
            failure = job.failure[1]
            if "error_type" in failure:
                body["error"], body["error_type"] = failure["detail"], failure["error_type"]
        return _json(body, 200)

    def _result(self, base: str, rid: str) -> Response:
        job = self._find(base, rid)
        if job is None:
            return _json({"detail": "Request not found"}, 404)
        headers = {"x-fal-request-id": job.id}
        if job.state in ("IN_QUEUE", "IN_PROGRESS", "FINISHING"):
            return _json({"detail": "Request is still in progress"}, 400, headers)
        job.finished.wait(30)
        if job.failure is not None:
            status, body, extra = job.failure
            return _json(body, status, {**headers, **extra})
        return _json(job.output, 200, headers)

    def _cancel(self, base: str, rid: str) -> Response:
        job = self._find(base, rid)
        if job is None:
            return _json({"status": "NOT_FOUND"}, 404)
        with self._lock:
            self.cancels.append(rid)
            if job.state in ("COMPLETED", "FINISHING"):
                return _json({"status": "ALREADY_COMPLETED"}, 400)
            if job.state != "CANCELLED":
                self.cancel_job(rid)
        return _json({"status": "CANCELLATION_REQUESTED"}, 202)

    def _finish(self, job: Job, host: str) -> None:
        """Produce the job's output (or failure) once and fire its webhook; a concurrent caller
        waits for the first one."""
        with self._lock:
            claimed, job.claimed = job.claimed, True
            job.state = "FINISHING" if not job.finished.is_set() else job.state
        if claimed:
            job.finished.wait(30)
            return
        if job.failure is None:
            try:
                job.output = self._output(job, host)
            except _ModelError as exc:
                job.failure = (422, {"detail": [exc.detail]}, {"X-Fal-Retryable": "false"})
        job.logs.append(_log_line("Done"))
        with self._lock:
            job.state = "COMPLETED"
            job.finished.set()
        if job.webhook_url:
            threading.Thread(target=self._deliver_webhook, args=(job,), daemon=True).start()

    def _deliver_webhook(self, job: Job) -> None:
        body: dict[str, Any] = {
            "request_id": job.id,
            "gateway_request_id": job.id,
            "status": "OK",
            "payload": job.output,
        }
        if job.failure is not None:
            body.update(
                status="ERROR", payload=job.failure[1], error=f"Request failed with status {job.failure[0]}"
            )
        record: dict[str, Any] = {"url": job.webhook_url, "body": body}
        try:
            record["status"] = requests.post(str(job.webhook_url), json=body, timeout=5).status_code
        except requests.RequestException as exc:
            record["error"] = repr(exc)
        with self._lock:
            self.webhooks.append(record)

    def _run(self, model_id: str) -> Response:
        fault = self._take_submit_fault()
        if fault is not None:
            return fault
        if model_id not in self.models:
            return _json({"detail": f"Application '{model_id}' not found"}, 404)
        payload = request.get_json(silent=True)
        with self._lock:
            self.submits.append((model_id, payload))
        errors = validate(self.models[model_id], payload)
        if errors:
            return _json({"detail": errors}, 422)
        job = Job("run-" + secrets.token_hex(8), model_id, app_base(model_id), payload, 0, 0)
        try:
            return _json(self._output(job, self._host()), 200, {"x-fal-request-id": job.id})
        except _ModelError as exc:
            return _json({"detail": [exc.detail]}, 422)

    # -- outputs -------------------------------------------------------------------------------

    def _store(self, host: str, data: bytes, content_type: str, file_name: str) -> dict[str, Any]:
        name = f"{secrets.token_hex(6)}_{file_name}"
        with self._lock:
            self._files[name] = (data, content_type)
        return {
            "url": f"{host}/files/{name}",
            "content_type": content_type,
            "file_name": file_name,
            "file_size": len(data),
        }

    def _fetch(self, url: str, host: str) -> bytes | None:
        """The bytes behind an input URL when it is reachable offline: the fake's own files, a
        ``data:`` URI or a loopback URL. None for any other host (no internet in tests)."""
        if url.startswith("data:"):
            return base64.b64decode(url.split(",", 1)[1])
        parts = urlsplit(url)
        if url.startswith(f"{host}/files/") or (self.url and url.startswith(f"{self.url}/files/")):
            with self._lock:
                stored = self._files.get(parts.path.removeprefix("/files/"))
            if stored is None:
                raise _ModelError(url)
            return stored[0]
        if parts.hostname in ("127.0.0.1", "localhost", "::1"):
            try:
                response = requests.get(url, timeout=5)
            except requests.RequestException:
                raise _ModelError(url) from None
            if response.status_code != 200:
                raise _ModelError(url)
            return response.content
        return None

    def _output(self, job: Job, host: str) -> dict[str, Any]:
        spec = self.models[job.model_id]
        data: dict[str, Any] = {
            **spec.defaults,
            **{k: v for k, v in (job.input or {}).items() if v is not None},
        }
        fetched: dict[str, bytes | None] = {}
        for name, field_spec in spec.fields.items():
            if field_spec.kind == "url" and isinstance(data.get(name), str):
                try:
                    fetched[name] = self._fetch(data[name], host)
                except _ModelError as exc:
                    exc.detail["loc"] = ["body", name]
                    raise
        builders: dict[str, Callable[..., dict[str, Any]]] = {
            "video": self._video,
            "audio": self._tts,
            "music": self._music,
            "transcript": self._transcript,
            "images": self._images,
        }
        return builders[spec.output](spec, data, host, fetched)

    def _video(
        self, spec: ModelSpec, data: dict[str, Any], host: str, fetched: dict[str, bytes | None]
    ) -> dict[str, Any]:
        aspect = data.get("aspect_ratio", "16:9")
        width, height = VIDEO_FRAMES.get(aspect, VIDEO_FRAMES["16:9"])
        seconds = _seconds(data.get("duration", 5))
        fps = int(data.get("fps", 24))
        clip = media.mp4(seconds, width, height, fps, bool(data.get("generate_audio", False)))
        video = self._store(host, clip, "video/mp4", "output.mp4")
        if spec.family in ("ltx", "wan", "sora"):
            video |= {
                "width": width,
                "height": height,
                "fps": fps,
                "duration": seconds,
                "num_frames": round(seconds * fps),
            }
        out: dict[str, Any] = {"video": video}
        if spec.family == "sora":
            out["video_id"] = f"video_{secrets.token_hex(12)}"
        if spec.family == "wan":
            out["seed"] = data.get("seed", 42)
            out["actual_prompt"] = data.get("prompt", "")
        if spec.family == "ltx":
            out["prompt"], out["seed"] = data.get("prompt", ""), data.get("seed", 42)
        return out

    def _tts(
        self, spec: ModelSpec, data: dict[str, Any], host: str, fetched: dict[str, bytes | None]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"audio": self._store(host, media.speech("mp3"), "audio/mpeg", "output.mp3")}
        if data.get("timestamps"):
            words = str(data.get("text", "")).split()
            step = media.SPEECH_SECONDS / max(1, len(words))
            out["timestamps"] = [
                {"text": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
                for i, w in enumerate(words)
            ]
        return out

    def _music(
        self, spec: ModelSpec, data: dict[str, Any], host: str, fetched: dict[str, bytes | None]
    ) -> dict[str, Any]:
        fmt = (data.get("audio_setting") or {}).get("format", "mp3")
        sample_rate = (data.get("audio_setting") or {}).get("sample_rate", 44100)
        clip = media.audio(fmt, 2.0, sample_rate)
        return {"audio": self._store(host, clip, media.AUDIO_FORMATS[fmt][1], f"output.{fmt}")}

    def _transcript(
        self, spec: ModelSpec, data: dict[str, Any], host: str, fetched: dict[str, bytes | None]
    ) -> dict[str, Any]:
        clip = fetched.get("audio_url")
        text = (
            media.SPEECH_TEXT
            if clip is not None and media.is_known_speech(clip)
            else "This is the stand-in transcript."
        )
        words = text.split()
        step = media.SPEECH_SECONDS / max(1, len(words))
        return {
            "text": text,
            "language_code": data.get("language_code") or "eng",
            "language_probability": 0.99,
            "words": [
                {
                    "text": w,
                    "start": round(i * step, 3),
                    "end": round((i + 1) * step, 3),
                    "type": "word",
                    "speaker_id": "speaker_0",
                }
                for i, w in enumerate(words)
            ],
        }

    def _images(
        self, spec: ModelSpec, data: dict[str, Any], host: str, fetched: dict[str, bytes | None]
    ) -> dict[str, Any]:
        size = data.get("image_size", "landscape_4_3")
        width, height = (size["width"], size["height"]) if isinstance(size, dict) else IMAGE_SIZES[size]
        fmt = data.get("output_format", "jpeg")
        image = media.image(width, height, fmt, "flux")
        stored = self._store(host, image, media.IMAGE_FORMATS[fmt][1], f"output.{fmt}")
        return {"images": [stored | {"width": width, "height": height}], "seed": data.get("seed", 42)}

    # -- files ---------------------------------------------------------------------------------

    def _file(self, name: str) -> Response:
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            return Response("Not Found", status=404)
        data, content_type = stored
        return Response(data, content_type=content_type)

    def _token(self) -> Response:
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens.add(token)
        expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        return _json(
            {"token": token, "token_type": "Bearer", "base_url": self._host(), "expires_at": expires}
        )

    def _upload_name(self, file_name: str | None) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", file_name or "upload.bin")
        return f"{secrets.token_hex(6)}_{safe}"

    def _cdn_upload(self) -> Response:
        name = self._upload_name(request.headers.get("X-Fal-File-Name"))
        with self._lock:
            self._files[name] = (request.get_data(), request.content_type or "application/octet-stream")
        return _json({"access_url": f"{self._host()}/files/{name}"})

    def _initiate(self) -> Response:
        body = request.get_json(silent=True) or {}
        name = self._upload_name(body.get("file_name"))
        host = self._host()
        return _json({"upload_url": f"{host}/_gcs/{name}", "file_url": f"{host}/files/{name}"})

    def _gcs_put(self, name: str) -> Response:
        with self._lock:
            self._files[name] = (request.get_data(), request.content_type or "application/octet-stream")
        return Response(status=200)


class _ModelError(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.detail = error([], MODEL_ERROR_MESSAGES["file_download_error"], "file_download_error", url)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def point_fal_client_at(fake_url: str, monkeypatch: Any = None) -> Callable[[], None]:
    """RECIPES Recipe B: point ``fal_client`` (module globals read at call time) at ``fake_url``:
    queue at ``{url}/``, sync run at ``{url}/_run/``, REST and CDN (uploads) at ``{url}``.
    With a pytest ``monkeypatch`` the patches are undone at teardown; either way the returned
    function restores the original values. Clients built before the call keep a CDN token
    manager bound to the old REST URL, so build ``SyncClient``s afterwards."""
    import fal_client.client as fcc

    values = {
        "QUEUE_URL_FORMAT": f"{fake_url}/",
        "RUN_URL_FORMAT": f"{fake_url}/_run/",
        "REST_URL": fake_url,
        "CDN_URL": fake_url,
    }
    saved = {name: getattr(fcc, name) for name in values}
    for name, value in values.items():
        if monkeypatch is not None:
            monkeypatch.setattr(fcc, name, value)
        else:
            setattr(fcc, name, value)

    def restore() -> None:
        for name, value in saved.items():
            setattr(fcc, name, value)

    return restore
