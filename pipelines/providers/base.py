"""The provider port: what a generation job asks of an AI provider, and the errors it gets.

Synchronous providers (OpenAI's image and audio endpoints) answer one call with the result.
Queue-based providers (fal, Black Forest Labs) are submitted to, then polled: the runner
saves the request id before it waits, so a job redelivered after its worker died re-attaches
to the same upstream request instead of paying for a second one.

Adapters turn vendor errors into these faktry errors, and nothing else leaves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from faktry.errors import FaktryError
from pipelines.catalog import Model


class ProviderError(FaktryError):
    """The provider failed in a way worth retrying (5xx, timeouts, connection errors)."""

    code = "provider_error"
    status = 502
    transient = True
    #: Counts towards opening the provider's circuit breaker.
    breaker = True
    #: The upstream request itself ended in failure: a retry must submit a new one.
    upstream_done = False


class ProviderRateLimited(ProviderError):
    code = "provider_rate_limited"
    status = 503
    breaker = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after} if retry_after else None)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    code = "provider_timeout"
    status = 504


class ProviderRejected(FaktryError):
    """The provider refused the request as invalid: retrying cannot help."""

    code = "provider_rejected"
    status = 422


class ProviderModerated(FaktryError):
    """The provider's own moderation refused the prompt or the output."""

    code = "content_blocked"
    status = 422


class ProviderCanceled(FaktryError):
    code = "canceled"
    status = 409


@dataclass(frozen=True)
class Request:
    job_id: str
    job_type: str
    model: Model
    #: The prompt (or, for speech, the text to speak); None for transcription.
    prompt: str | None
    #: The model's parameters, without ``model``.
    params: dict[str, Any]
    #: Local paths of the job's input files, by input field (``file_id``, ``mask_file_id``).
    files: dict[str, Path]
    work_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    """A file the provider produced, downloaded into the work folder."""

    name: str
    path: Path


@dataclass(frozen=True)
class Finished:
    outputs: list[Output]
    #: Facts besides files (a transcript, the seed used, the provider's request id).
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Submitted:
    request_id: str
    #: What polling and canceling need later (URLs the provider returned), saved on the job.
    state: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    status: str
    queue_position: int | None = None
    progress: float | None = None


class Provider(Protocol):
    name: str
    #: True: `submit` then `poll`; False: `run` answers at once.
    queued: bool

    def run(self, request: Request) -> Finished: ...

    def submit(self, request: Request) -> Submitted: ...

    def poll(self, request: Request, submitted: Submitted) -> Pending | Finished: ...

    def cancel(self, submitted: Submitted) -> None: ...


def download(url: str, dest: Path, *, max_bytes: int, timeout: float) -> Path:
    """Copy a provider's output URL to a local file at once (provider URLs expire).

    Streams to disk with its own timeout and a size cap; a failure is a `ProviderError`
    (retried), and a partial file is removed."""
    import httpx

    if not url.startswith(("https://", "http://")):
        raise ProviderRejected("the provider returned an output that is not a URL")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise ProviderError(
                    f"downloading the provider's output failed with HTTP {response.status_code}"
                )
            size = 0
            with dest.open("wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ProviderRejected("the provider's output is larger than faktry accepts")
                    fh.write(chunk)
    except httpx.TimeoutException as err:
        dest.unlink(missing_ok=True)
        raise ProviderTimeout("downloading the provider's output timed out") from err
    except httpx.HTTPError as err:
        dest.unlink(missing_ok=True)
        raise ProviderError("downloading the provider's output failed") from err
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest
