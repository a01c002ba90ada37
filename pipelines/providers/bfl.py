"""Black Forest Labs over its HTTP API: submit, then poll the ``polling_url`` it returns.

Every call carries ``x-key``. The polling URL often names another cluster than the submit
host, so it is followed verbatim. Result URLs expire after ten minutes: the image is
downloaded as soon as the task is Ready. EU-hosted models submit to the EU base URL.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

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

_TERMINAL_FAILURES = {"Error", "Task not found"}
_MODERATED = {"Request Moderated", "Content Moderated"}


class BFLProvider:
    name = "bfl"
    queued = True

    def __init__(
        self, *, api_key: str, base_url: str, eu_base_url: str, timeout: float = 120.0,
        max_output_bytes: int = 256 * 1024**2,
    ) -> None:  # fmt: skip
        self._key = api_key
        self._bases = {"global": base_url.rstrip("/"), "eu": eu_base_url.rstrip("/")}
        self._timeout = timeout
        self._max_output_bytes = max_output_bytes

    def run(self, request: Request) -> Finished:
        raise NotImplementedError("BFL is asynchronous: submit, then poll")

    def submit(self, request: Request) -> Submitted:
        ep = request.model.endpoint
        body: dict[str, Any] = {"prompt": request.prompt, **request.params}
        if "file_id" in request.files:  # an edit: the reference image travels inline
            body["input_image"] = _data(request.files["file_id"])
        url = self._bases[ep.get("region", "global")] + ep["path"]
        answer = self._call("POST", url, json=body)
        if "id" not in answer or "polling_url" not in answer:
            raise ProviderError("BFL answered without a task id")
        return Submitted(
            str(answer["id"]), {"polling_url": answer["polling_url"], "region": ep.get("region")}
        )

    def poll(self, request: Request, submitted: Submitted) -> Pending | Finished:
        answer = self._call("GET", submitted.state["polling_url"])
        status = str(answer.get("status"))
        if status == "Ready":
            result = answer.get("result") or {}
            sample = result.get("sample")
            if not sample:
                raise ProviderError("BFL reported Ready without an image")
            fmt = request.params.get("output_format", "png")
            path = download(
                str(sample),
                request.work_dir / f"image.{'jpg' if fmt == 'jpeg' else fmt}",
                max_bytes=self._max_output_bytes,
                timeout=self._timeout,
            )
            return Finished(
                [Output("image", path)],
                {"seed": result.get("seed"), "provider_request_id": submitted.request_id},
            )
        if status in _MODERATED:
            raise ProviderModerated(f"Black Forest Labs refused the request ({status})")
        if status in _TERMINAL_FAILURES:
            failed = ProviderError(f"Black Forest Labs reported {status}")
            failed.upstream_done = True
            raise failed
        progress = answer.get("progress")
        return Pending(status, progress=float(progress) if isinstance(progress, int | float) else None)

    def cancel(self, submitted: Submitted) -> None:
        return None  # BFL has no cancel: the task finishes upstream and is not downloaded

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = httpx.request(
                method, url, headers={"x-key": self._key}, timeout=self._timeout, **kwargs
            )
        except httpx.TimeoutException as err:
            raise ProviderTimeout("Black Forest Labs did not answer in time") from err
        except httpx.HTTPError as err:
            raise ProviderError("Black Forest Labs could not be reached") from err
        if response.status_code == 429:
            retry = response.headers.get("retry-after")
            wait = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
            raise ProviderRateLimited("Black Forest Labs is rate limiting requests", retry_after=wait)
        if response.status_code in (400, 422):
            raise ProviderRejected(f"Black Forest Labs refused the request: {_detail(response)}")
        if response.status_code >= 400:
            raise ProviderError(f"Black Forest Labs answered {response.status_code}")
        try:
            data = response.json()
        except ValueError as err:
            raise ProviderError("Black Forest Labs answered with something that is not JSON") from err
        if not isinstance(data, dict):
            raise ProviderError("Black Forest Labs answered with something unexpected")
        return data


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:200]
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = ".".join(str(x) for x in detail[0].get("loc", [])[1:])
        return f"{loc}: {detail[0].get('msg', '')}"[:200]
    return str(detail)[:200]
