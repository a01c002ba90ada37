"""What every user shares: a tenant, its uploads, submits that tell expected refusals apart.

Custom stats, beside the HTTP rows (the runner keeps them out of the HTTP totals):

- ``HANDLED <status> <code>``: an expected refusal (402 ``insufficient_credits``, 429
  ``rate_limited``). The HTTP row of the same request counts it as a success.
- ``JOB <type> <status>``: a job's turnaround, submit to terminal status, as its
  "response time", for the jobs a user waited for.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import IO, Any

from locust import HttpUser
from locust.clients import ResponseContextManager
from locust.env import Environment
from locust.exception import StopUser

from loadtests import common, media

log = logging.getLogger("loadtests")

PROMPTS = (
    "a lighthouse at dusk, watercolour",
    "a bowl of lemons on a blue table",
    "a paper boat on a quiet pond",
    "a mountain village in the morning fog",
)


class Run:
    """What the users of this locust process share; filled once by `configure`."""

    def __init__(self) -> None:
        self.tenants: list[common.Tenant] = []
        self.media = media.Media(png=b"", mp4=None)
        self.dir: Path | None = None
        self.jobs_file: IO[str] | None = None
        self._turns: dict[str, itertools.count[int]] = defaultdict(itertools.count)

    def tenant_for(self, role: str) -> common.Tenant:
        """Tenants of ``role`` round robin; any tenant when none has that role."""
        pool = [t for t in self.tenants if t.role == role] or self.tenants
        return pool[next(self._turns[role]) % len(pool)]

    def log_job(self, job_id: str, tenant: str, job_type: str) -> None:
        if self.jobs_file is not None:
            # One write of one whole line: greenlets do not switch inside a file write.
            self.jobs_file.write(json.dumps({"job": job_id, "tenant": tenant, "type": job_type}) + "\n")


RUN = Run()


def configure(environment: Environment) -> None:
    """Once per locust process, before any user starts. Raising here makes locust exit 1."""
    common.check_loopback(environment.host)
    keys = os.environ.get(common.KEYS_ENV)
    if not keys:
        raise RuntimeError(f"set {common.KEYS_ENV} to a keys file (python -m loadtests.run writes one)")
    RUN.tenants = common.read_tenants(Path(keys))
    if not RUN.tenants:
        raise RuntimeError(f"{keys} lists no tenants")
    RUN.dir = Path(os.environ.get(common.DIR_ENV) or tempfile.mkdtemp(prefix="faktry-load-"))
    RUN.media = media.generate(RUN.dir / "media")
    jobs = os.environ.get(common.JOBS_ENV)
    if jobs:
        RUN.jobs_file = open(jobs, "a", buffering=1)  # noqa: SIM115 - open for the whole run


def finish(environment: Environment) -> None:
    """At exit: what the JSON stats leave out (error messages, task exceptions) for the runner."""
    if RUN.jobs_file is not None:
        RUN.jobs_file.close()
        RUN.jobs_file = None
    if RUN.dir is None:
        return
    runner = environment.runner
    exceptions = [
        {"count": e["count"], "msg": e["msg"], "traceback": e["traceback"]}
        for e in (runner.exceptions.values() if runner is not None else [])
    ]
    errors = [
        {"method": e["method"], "name": e["name"], "error": e["error"], "occurrences": e["occurrences"]}
        for e in environment.stats.serialize_errors().values()
    ]
    (RUN.dir / "errors.json").write_text(json.dumps({"errors": errors, "exceptions": exceptions}, indent=2))


def _json(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_code(response: Any) -> str:
    body = _json(response) or {}
    error = body.get("error")
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _describe(response: Any) -> str:
    if response.status_code == 0:
        return f"no answer: {response.error!r}"
    return f"{response.status_code} {_error_code(response) or response.text[:120]!r}"


class FaktryUser(HttpUser):
    """A client of one tenant (by ``role``), with a PNG and an MP4 of its own uploaded at start."""

    abstract = True
    role = "api"
    #: A well-behaved client sleeps as ``Retry-After`` says (up to 5 s) after a 429.
    honours_retry_after = True

    def on_start(self) -> None:
        try:
            common.check_loopback(self.host)
        except common.HostRefused as exc:
            log.error("%s", exc)
            raise StopUser() from None
        self.tenant = RUN.tenant_for(self.role)
        self.client.headers["Authorization"] = f"Bearer {self.tenant.key}"
        self.recent: deque[str] = deque(maxlen=20)
        self.png_id = self.upload("input.png", RUN.media.png, "image/png")
        self.mp4_id = self.upload("input.mp4", RUN.media.mp4, "video/mp4") if RUN.media.mp4 else None

    # -- requests ----------------------------------------------------------------------------

    def upload(self, filename: str, data: bytes, mime: str, attempts: int = 5) -> str | None:
        """Upload a file: its id, or None. A server at its cap of uploads under way answers
        429 ``too_many_uploads``: counted as handled, and tried again after ``Retry-After``."""
        for _ in range(attempts):
            with self.client.post(
                "/v1/files",
                files={"file": (filename, data, mime)},
                name="/v1/files [upload]",
                catch_response=True,
            ) as r:
                body = _json(r)
                if r.status_code == 201 and body and "id" in body:
                    return str(body["id"])
                if r.status_code == 429 and _error_code(r) == "too_many_uploads":
                    r.success()
                    self.handled(r, "too_many_uploads")
                    backoff = _retry_after(r)
                else:
                    r.failure(_describe(r))
                    return None
            _back_off(backoff)
        return None

    def submit(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Submit a job: the job on 202; None on an expected refusal (counted as handled) or failure."""
        with self.client.post(
            "/v1/jobs", json=body, name=f"/v1/jobs [{body['type']}]", catch_response=True
        ) as r:
            job = _json(r)
            if r.status_code == 202 and job and "id" in job:
                self._accepted(job, body)
                return job
            backoff = self._refused(r)
        _back_off(backoff)
        return None

    def submit_batch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit many jobs in one request (``POST /v1/jobs/batch``, all or nothing): the
        jobs on 202; [] on an expected refusal (counted as handled) or failure."""
        with self.client.post(
            "/v1/jobs/batch", json={"jobs": bodies}, name="/v1/jobs/batch", catch_response=True
        ) as r:
            answer = _json(r)
            if r.status_code == 202 and answer and isinstance(answer.get("data"), list):
                jobs: list[dict[str, Any]] = answer["data"]
                for job, body in zip(jobs, bodies, strict=True):
                    self._accepted(job, body)
                return jobs
            backoff = self._refused(r)
        _back_off(backoff)
        return []

    def _accepted(self, job: dict[str, Any], body: dict[str, Any]) -> None:
        """Log a job the platform accepted, keep it to poll, and stamp when it was submitted."""
        RUN.log_job(job["id"], self.tenant.name, body["type"])
        self.recent.append(job["id"])
        job["_submitted"] = time.monotonic()

    def _refused(self, response: ResponseContextManager) -> float:
        """Count a submit that was not accepted: an expected refusal as handled, anything else
        as a failure. The seconds to back off: a 429's ``Retry-After`` when this client
        honours it, else 0."""
        code = _error_code(response)
        if code and common.EXPECTED_SUBMIT_REFUSALS.get(response.status_code) == code:
            response.success()
            self.handled(response, code)
            if response.status_code == 429 and self.honours_retry_after:
                return _retry_after(response)
        else:
            response.failure(_describe(response))
        return 0.0

    def handled(self, response: ResponseContextManager, code: str) -> None:
        self.environment.events.request.fire(
            request_type="HANDLED",
            name=f"{response.status_code} {code}",
            response_time=response.elapsed.total_seconds() * 1000,
            response_length=0,
            exception=None,
            context={},
        )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self.client.get(f"/v1/jobs/{job_id}", name="/v1/jobs/[id]", catch_response=True) as r:
            job = _json(r)
            if r.status_code == 200 and job and "status" in job:
                return job
            r.failure(_describe(r))
        return None

    def get(self, path: str, name: str, **params: Any) -> dict[str, Any] | None:
        with self.client.get(path, params=params or None, name=name, catch_response=True) as r:
            body = _json(r)
            if r.status_code == 200 and body is not None:
                return body
            r.failure(_describe(r))
        return None

    def wait_for(self, jobs: list[dict[str, Any]], timeout: float = 120.0) -> None:
        """Poll the jobs until each is terminal (its turnaround recorded) or ``timeout`` passes.

        A job still open at the timeout is left to the runner, which polls every job after the run.
        """
        pending = {j["id"]: j for j in jobs if j}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for job_id, submitted in list(pending.items()):
                state = self.get_job(job_id)
                if state and state["status"] in common.TERMINAL:
                    self.turnaround(submitted, state["status"])
                    del pending[job_id]
            if pending:
                time.sleep(0.5)

    def turnaround(self, submitted: dict[str, Any], status: str) -> None:
        self.environment.events.request.fire(
            request_type="JOB",
            name=f"{submitted['type']} {status}",
            response_time=(time.monotonic() - submitted["_submitted"]) * 1000,
            response_length=0,
            exception=None,
            context={},
        )

    def poll_recent(self) -> None:
        if self.recent:
            self.get_job(random.choice(self.recent))

    # -- the workload --------------------------------------------------------------------------

    def body(self, kind: str) -> dict[str, Any] | None:
        """A job of ``kind``, or None when its input is missing (no ffmpeg, failed upload)."""
        if kind == "resize" and self.png_id:
            size = random.choice((64, 96, 128))
            return {
                "type": "image.resize",
                "input": {"file_id": self.png_id},
                "params": {"width": size, "height": size, "format": "webp"},
            }
        if kind == "probe" and (self.mp4_id or self.png_id):
            return {"type": "media.probe", "input": {"file_id": self.mp4_id or self.png_id}, "params": {}}
        if kind == "transcode" and self.mp4_id:
            return {
                "type": "video.transcode",
                "input": {"file_id": self.mp4_id},
                "params": {"preset": "mp4_360p"},
            }
        if kind == "generate":
            return {
                "type": "image.generate",
                "input": {"prompt": random.choice(PROMPTS)},
                "params": {"model": "local-image", "width": 256, "height": 256},
            }
        return None

    def mixed(self) -> dict[str, Any] | None:
        """The media mix: resize 4, generate 2, probe 2, transcode 1 (skipped without an MP4)."""
        kinds = ["resize"] * 4 + ["generate"] * 2 + ["probe"] * 2 + (["transcode"] if self.mp4_id else [])
        return self.body(random.choice(kinds))


def _back_off(seconds: float) -> None:
    """Wait (up to 5 s) after a refusal, once the response is recorded; gevent-patched, so
    only this user waits."""
    if seconds:
        time.sleep(min(seconds, 5.0))


def _retry_after(response: Any) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
