"""A local stand-in for the Black Forest Labs (BFL) API, served over loopback.

`BFLFake` follows RECIPES §10.1:

- ``POST {base}/v1/<endpoint>`` with header ``x-key`` and a JSON body returns
  ``{id, polling_url, cost, input_mp, output_mp}``; invalid bodies get 422
  ``{"detail": [{loc, msg, type}]}`` (FastAPI). Endpoints: `ENDPOINTS`.
- Three bases share one server: global `url`, `eu_url` (``{url}/eu``, like ``api.eu.bfl.ai``) and
  `us_url` (``{url}/us``). Each recorded call carries ``region`` (global, eu or us) so a test can
  check that EU-resident work went to the EU base.
- ``polling_url`` points at a *cluster* path, not the submit base, as the real API does
  (``api.eu1.bfl.ai/v1/get_result?id=…``): ``{url}/eu1/v1/get_result?id=…`` for EU submits,
  ``{url}/us1/…`` otherwise. Clients must follow it verbatim; ``x-key`` is required there too.
- ``GET polling_url`` answers ``{id, status, result, progress, details, preview}``: ``Pending``
  (with ``progress``) for `pending_polls` polls, then ``Ready`` with ``result.sample`` (a
  signed-looking URL on the fake serving real image bytes, valid `sample_ttl` seconds, 403 after)
  or a scripted ``Request Moderated`` / ``Content Moderated`` / ``Error``. An unknown id answers
  ``Task not found`` (HTTP `task_not_found_status`, 200 by default; the real code is unverified).
- ``GET {base}/v1/credits`` answers ``{credits}``; each accepted task costs credits and a submit
  costing more than is left gets 402.
Webhooks (``webhook_url``) are accepted but never delivered.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, g, jsonify, request

from tests.standins import media
from tests.standins.fal_specs import F, enum, flag, integer, number, text, validate_fields
from tests.standins.faults import CallLog, Faults, record_request
from tests.standins.server import Served, ServedApp

REGIONS = ("eu", "us")
CLUSTERS = {"global": "us1", "eu": "eu1", "us": "us1"}
STATUSES = ("Task not found", "Pending", "Request Moderated", "Content Moderated", "Ready", "Error")
MAX_PIXELS = 4 * 1024 * 1024


def _images(count: int) -> dict[str, F]:
    names = ["input_image", *(f"input_image_{n}" for n in range(2, count + 1))]
    return {name: text() for name in names}


_COMMON = {
    "prompt": text(True),
    "seed": integer(),
    "webhook_url": text(max_length=2083),
    "webhook_secret": text(),
    "prompt_upsampling": flag(),
}
_FLUX2 = {
    **_COMMON,
    "width": integer(),
    "height": integer(),
    "safety_tolerance": integer(0, 5),
    "output_format": enum("jpeg", "png", "webp"),
    "disable_pup": flag(),
}
_KONTEXT = {
    **_COMMON,
    **_images(4),
    "aspect_ratio": text(),
    "output_format": enum("jpeg", "png"),
    "safety_tolerance": integer(0, 6),
}
_PRO11 = {
    **_COMMON,
    "prompt": text(),
    "width": integer(256, 1440),
    "height": integer(256, 1440),
    "safety_tolerance": integer(0, 6),
    "output_format": enum("jpeg", "png"),
    "image_prompt": text(),
}
_ULTRA = {
    **_COMMON,
    "prompt": text(),
    "aspect_ratio": text(),
    "raw": flag(),
    "image_prompt": text(),
    "image_prompt_strength": number(0, 1),
    "safety_tolerance": integer(0, 6),
    "output_format": enum("jpeg", "png"),
}


@dataclass(frozen=True)
class Endpoint:
    fields: dict[str, F]
    output_format: str
    credits_per_mp: float
    dimension_step: int = 0  # width/height multiple (0: no width/height)
    max_refs: int = 0


ENDPOINTS: dict[str, Endpoint] = {
    "flux-2-pro": Endpoint({**_FLUX2, **_images(8)}, "jpeg", 3.0, 16, 8),
    "flux-2-max": Endpoint({**_FLUX2, **_images(8)}, "jpeg", 7.0, 16, 8),
    "flux-2-flex": Endpoint(
        {**_FLUX2, **_images(8), "steps": integer(1, 50), "guidance": number(1.5, 10)}, "jpeg", 6.0, 16, 8
    ),
    "flux-2-klein-4b": Endpoint({**_FLUX2, **_images(4)}, "jpeg", 1.4, 16, 4),
    "flux-2-klein-9b": Endpoint({**_FLUX2, **_images(4)}, "jpeg", 1.5, 16, 4),
    "flux-kontext-pro": Endpoint(_KONTEXT, "png", 4.0),
    "flux-kontext-max": Endpoint(_KONTEXT, "png", 8.0),
    "flux-kontext": Endpoint(_KONTEXT, "png", 4.0),  # alias listed by BFL's skills repo (unverified)
    "flux-pro-1.1": Endpoint(_PRO11, "jpeg", 4.0, 32),
    "flux-pro-1.1-ultra": Endpoint(_ULTRA, "jpeg", 6.0),
    "flux-dev": Endpoint(
        {**_COMMON, "width": integer(256, 1440), "height": integer(256, 1440)}, "jpeg", 2.5, 32
    ),
    "flux-pro-1.0-fill": Endpoint(
        {
            **_COMMON,
            "prompt": text(),
            "image": text(True),
            "mask": text(),
            "output_format": enum("jpeg", "png"),
        },
        "jpeg",
        5.0,
    ),
    "flux-pro-1.0-expand": Endpoint(
        {
            **_COMMON,
            "prompt": text(),
            "image": text(True),
            **{side: integer(0, 2048) for side in ("top", "bottom", "left", "right")},
        },
        "jpeg",
        5.0,
    ),
}


def _detail(loc: list[Any], msg: str, kind: str, value: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"loc": ["body", *loc], "msg": msg, "type": kind}
    if value is not None:
        item["input"] = value
    return item


def _aspect(value: str) -> float | None:
    match = re.fullmatch(r"(\d+):(\d+)", value)
    if not match or not int(match[2]):
        return None
    return int(match[1]) / int(match[2])


def _validate(endpoint: Endpoint, body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [_detail([], "Input should be a valid dictionary or object", "model_attributes_type")]
    errors = [
        {k: v for k, v in item.items() if k != "url"} for item in validate_fields(endpoint.fields, body)
    ]
    if errors:
        return errors
    if endpoint.dimension_step:
        for side in ("width", "height"):
            value = body.get(side)
            if value in (None, 0) and endpoint.dimension_step == 16:
                continue  # FLUX.2: 0 / absent lets the model choose
            if value is None:
                continue
            if value < 64 or value % endpoint.dimension_step:
                msg = f"{side} must be at least 64 and a multiple of {endpoint.dimension_step}"
                errors.append(_detail([side], msg, "value_error", value))
        if not errors and (body.get("width") or 0) * (body.get("height") or 0) > MAX_PIXELS:
            errors.append(_detail(["width"], "width x height must be at most 4 megapixels", "value_error"))
    if endpoint.max_refs:
        extra = [
            key
            for key in body
            if key.startswith("input_image_") and int(key.rsplit("_", 1)[1]) > endpoint.max_refs
        ]
        errors += [
            _detail([key], f"At most {endpoint.max_refs} input images", "extra_forbidden", body[key])
            for key in extra
        ]
    if isinstance(body.get("aspect_ratio"), str):
        ratio = _aspect(body["aspect_ratio"])
        if ratio is None or not 9 / 21 <= ratio <= 21 / 9:
            errors.append(
                _detail(
                    ["aspect_ratio"],
                    "Aspect ratio must be between 21:9 and 9:21",
                    "value_error",
                    body["aspect_ratio"],
                )
            )
    return errors


def _output_size(name: str, body: dict[str, Any]) -> tuple[int, int]:
    if body.get("width") and body.get("height"):
        return int(body["width"]), int(body["height"])
    megapixels = 4.0 if name == "flux-pro-1.1-ultra" else 1.0
    ratio = _aspect(body.get("aspect_ratio") or ("16:9" if "ultra" in name else "1:1")) or 1.0
    width = math.sqrt(megapixels * 1024 * 1024 * ratio)
    return round(width / 32) * 32, round(width / ratio / 32) * 32


@dataclass
class Task:
    id: str
    endpoint: str
    region: str
    body: dict[str, Any]
    pending_polls: int
    final_status: str = "Ready"
    polls: int = 0
    sample: str | None = None
    sample_expires: float = 0.0
    start_time: float = 0.0


class BFLFake(Served):
    """The stand-in. ``BFLFake(key="bfl-test-key").start()``; use `url`, `eu_url` or `us_url` as
    the API base. ``keys`` holds the accepted ``x-key`` values; ``moderated_words`` maps a
    lower-case phrase in the prompt to the terminal status it causes."""

    name = "bfl-fake"

    def __init__(self, key: str = "bfl-test-key", *, pending_polls: int = 1, credits: float = 1000.0) -> None:
        self.key = key
        self.keys = {key}
        self.pending_polls = pending_polls
        self._initial_pending_polls = pending_polls
        self.credits = credits
        self.sample_ttl = 600.0
        self.task_not_found_status = 200
        self.moderated_words: dict[str, str] = {}
        self.faults = Faults()
        self.url = ""
        self._initial_credits = credits
        self._log = CallLog()
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._samples: dict[str, tuple[bytes, str, str]] = {}  # path -> (bytes, content type, task id)
        self._final: list[str] = []
        self._served: ServedApp | None = None
        self.app = self._make_app()

    @property
    def eu_url(self) -> str:
        return f"{self.url}/eu"

    @property
    def us_url(self) -> str:
        return f"{self.url}/us"

    def reset(self) -> None:
        self.faults.reset()
        self._log.clear()
        with self._lock:
            self.keys = {self.key}
            self.pending_polls = self._initial_pending_polls
            self.credits = self._initial_credits
            self.sample_ttl = 600.0
            self.task_not_found_status = 200
            self.moderated_words = {}
            self._tasks.clear()
            self._samples.clear()
            self._final.clear()

    # -- scripting and inspection --------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._log.snapshot()

    @property
    def submits(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["method"] == "POST"]

    @property
    def polls(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["path"].endswith("/get_result")]

    @property
    def tasks(self) -> dict[str, Task]:
        with self._lock:
            return dict(self._tasks)

    def fail(
        self, status: int, times: int = 1, retry_after: float | None = None, *, on: str = "submit"
    ) -> None:
        """Answer the next ``times`` submits (``on="poll"``: polls, ``"any"``: both) with
        ``status``: 429 carries ``Retry-After`` (1 s unless given), 402 says out of credits."""
        if status == 429 and retry_after is None:
            retry_after = 1
        headers = {"Retry-After": _seconds_header(retry_after)} if retry_after is not None else {}
        self.faults.fail(
            status, times, path={"submit": "submit", "poll": "poll", "any": None}[on], headers=headers
        )

    def finish_with(self, status: str, times: int = 1) -> None:
        """The next ``times`` accepted tasks end in ``status`` (Error, Request Moderated,
        Content Moderated, Ready, Task not found) after their Pending polls."""
        if status not in STATUSES or status == "Pending":
            raise ValueError(f"not a terminal BFL status: {status!r}")
        with self._lock:
            self._final.extend([status] * times)

    def moderate(self, phrase: str, status: str = "Request Moderated") -> None:
        self.moderated_words[phrase.lower()] = status

    def hang(self, seconds: float, times: int = 1, *, on: str = "submit") -> None:
        self.faults.hang(seconds, times, path={"submit": "submit", "poll": "poll", "any": None}[on])

    def outage(self, on: bool = True) -> None:
        """While on, every API request (submit, poll, credits) gets 503."""
        self.faults.outage = on

    def expire_samples(self) -> None:
        """Make every ``result.sample`` URL issued so far answer 403, as after BFL's 10 minutes."""
        with self._lock:
            for task in self._tasks.values():
                task.sample_expires = 0.0

    # -- the app -------------------------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask("bfl_fake")
        app.before_request(self._before)
        app.after_request(self._after)
        app.add_url_rule("/delivery/<cluster>/results/<task_id>/<name>", "sample", self._sample)
        for prefix in ("", "/<region>"):
            app.add_url_rule(f"{prefix}/v1/get_result", f"poll{prefix}", self._poll)
            app.add_url_rule(f"{prefix}/v1/credits", f"credits{prefix}", self._credits)
            app.add_url_rule(f"{prefix}/v1/<endpoint>", f"submit{prefix}", self._submit, methods=["POST"])
        return app

    def _region(self) -> str:
        first = request.path.strip("/").split("/", 1)[0]
        return first if first != "v1" else "global"

    def _before(self) -> Response | None:
        if request.path.startswith("/delivery/"):
            return None
        region = self._region()
        if region not in ("global", *REGIONS, *CLUSTERS.values()):
            return _json({"detail": "Not Found"}, 404)
        g.call = record_request(request, region=region)
        self._log.append(g.call)
        if self.faults.outage:
            return _json({"detail": "Service Unavailable"}, 503)
        kind = (
            "poll"
            if request.path.endswith("/get_result")
            else "submit"
            if request.method == "POST"
            else "other"
        )
        self.faults.sleep(self.faults.take_hang(kind))
        key = request.headers.get("x-key")
        if not key or key not in self.keys:
            return _json({"detail": "Not authenticated - Invalid Authentication"}, 401)
        fault = self.faults.take_fail(kind)
        if fault is not None:
            messages = {
                402: "Insufficient credits",
                429: "You have exceeded the number of active tasks",
                401: "Invalid key",
            }
            return _json(
                {"detail": messages.get(fault.status, "Internal Server Error")}, fault.status, fault.headers
            )
        return None

    def _after(self, response: Response) -> Response:
        entry = g.get("call")
        if entry is not None:
            entry["status"] = response.status_code
        return response

    def _submit(self, endpoint: str, region: str = "global") -> Response:
        spec = ENDPOINTS.get(endpoint)
        if spec is None or region not in ("global", *REGIONS):
            return _json({"detail": "Not Found"}, 404)
        body = request.get_json(silent=True)
        errors = _validate(spec, body)
        if errors:
            return _json({"detail": errors}, 422)
        assert isinstance(body, dict)
        width, height = _output_size(endpoint, body)
        output_mp = round(width * height / 1_000_000, 2)
        refs = sum(1 for key in body if key.startswith("input_image") or key in ("image", "image_prompt"))
        input_mp = float(refs)
        cost = round(spec.credits_per_mp * max(output_mp, 1.0) + input_mp, 2)
        prompt = str(body.get("prompt") or "").lower()
        with self._lock:
            if cost > self.credits:
                return _json({"detail": "Insufficient credits"}, 402)
            self.credits -= cost
            final = self._final.pop(0) if self._final else "Ready"
            for phrase, status in self.moderated_words.items():
                if phrase in prompt:
                    final = status
            task = Task(
                str(uuid.uuid4()), endpoint, region, body, self.pending_polls, final, start_time=time.time()
            )
            self._tasks[task.id] = task
        cluster = CLUSTERS[region]
        polling_url = f"{request.host_url.rstrip('/')}/{cluster}/v1/get_result?id={task.id}"
        if body.get("webhook_url"):
            return _json(
                {
                    "id": task.id,
                    "status": "Pending",
                    "webhook_url": body["webhook_url"],
                    "cost": cost,
                    "input_mp": input_mp,
                    "output_mp": output_mp,
                }
            )
        return _json(
            {
                "id": task.id,
                "polling_url": polling_url,
                "cost": cost,
                "input_mp": input_mp,
                "output_mp": output_mp,
            }
        )

    def _poll(self, region: str = "global") -> Response:
        task_id = request.args.get("id", "")
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                task.polls += 1
        empty = {"result": None, "progress": None, "details": None, "preview": None}
        if task is None or (task.final_status == "Task not found" and task.polls > task.pending_polls):
            return _json({"id": task_id, "status": "Task not found", **empty}, self.task_not_found_status)
        if task.polls <= task.pending_polls:
            progress = round(min(0.9, task.polls / (task.pending_polls + 1)), 2)
            return _json({"id": task.id, "status": "Pending", **empty, "progress": progress})
        body: dict[str, Any] = {"id": task.id, "status": task.final_status, **empty}
        if task.final_status == "Ready":
            body["result"] = self._ready_result(task)
        elif task.final_status in ("Request Moderated", "Content Moderated"):
            body["details"] = {"Moderation Reasons": ["Derivative Works"]}
        elif task.final_status == "Error":
            body["details"] = {"error": "Task failed (stand-in)"}
        return _json(body)

    def _ready_result(self, task: Task) -> dict[str, Any]:
        endpoint = ENDPOINTS[task.endpoint]
        fmt = task.body.get("output_format") or endpoint.output_format
        with self._lock:
            if task.sample is None:
                width, height = _output_size(task.endpoint, task.body)
                data = media.image(width, height, fmt, task.endpoint)
                content_type = media.IMAGE_FORMATS[fmt][1]
                cluster = CLUSTERS[task.region]
                path = f"/delivery/{cluster}/results/{task.id}/sample.{fmt}"
                expires = time.time() + self.sample_ttl
                se = quote(datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                sig = hashlib.sha256(f"{path}{se}".encode()).hexdigest()[:43]
                task.sample = f"{request.host_url.rstrip('/')}{path}?se={se}&sp=r&sv=2024-11-04&sr=b&rsct={quote(content_type, safe='')}&sig={sig}"
                task.sample_expires = expires
                self._samples[path] = (data, content_type, task.id)
        end = task.start_time + 0.5
        return {
            "sample": task.sample,
            "prompt": task.body.get("prompt"),
            "seed": task.body.get("seed", 42),
            "start_time": task.start_time,
            "end_time": end,
            "duration": round(end - task.start_time, 2),
        }

    def _sample(self, cluster: str, task_id: str, name: str) -> Response:
        with self._lock:
            stored = self._samples.get(request.path)
            task = self._tasks.get(task_id)
        if stored is None or task is None or not request.args.get("sig"):
            return Response(
                "<Error><Code>BlobNotFound</Code></Error>", status=404, content_type="application/xml"
            )
        if time.time() > task.sample_expires:
            return Response(
                "<Error><Code>AuthenticationFailed</Code></Error>", status=403, content_type="application/xml"
            )
        data, content_type, _ = stored
        return Response(data, content_type=content_type)

    def _credits(self, region: str = "global") -> Response:
        with self._lock:
            return _json({"credits": round(self.credits, 2)})


def _seconds_header(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response
