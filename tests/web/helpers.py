"""Small helpers for driving the API in tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def upload(client: Any, tenant: Any, path: Path, name: str | None = None) -> Any:
    with path.open("rb") as fh:
        return client.post(
            "/v1/files",
            headers=tenant.headers,
            data={"file": (fh, name or path.name)},
            content_type="multipart/form-data",
        )


def wait_for_job(
    client: Any, tenant: Any, job_id: str, *, timeout: float = 60.0, until: tuple[str, ...] = ()
) -> Any:
    """Poll the job until it finishes (or reaches one of ``until``); returns its JSON."""
    done = until or ("succeeded", "failed", "canceled")
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json
        if body["status"] in done:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s: {body}")
        time.sleep(0.05)
