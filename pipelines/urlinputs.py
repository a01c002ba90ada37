"""Job inputs given as a URL (``{"url": "https://…"}`` in place of ``file_id``).

At submit, `check` refuses a URL of the wrong shape (not http/https, a user name or
password, no host, too long, not plain ASCII) and one that names a private, link-local or
other inside address literally: 422 naming ``input.url``. Nothing is fetched then.

The worker `fetch`es it before the job's work, with no transaction open:

- through `pipelines.webhooks.safehttp.get`: every address the host resolves to is checked
  (loopback only with ``url_fetch_allow_loopback``), the connection pinned to the checked
  one, at most ``url_fetch_max_redirects`` redirects, each checked the same way, the whole
  fetch within ``url_fetch_timeout_seconds``, the body streamed to the attempt's temp folder
  and cut off past the tier's upload limit;
- a file of the tenant's library uploaded with the same SHA-256 is used as it is;
- otherwise the bytes go in as an upload (`pipelines.files.ingest_upload`: sniffed from
  their content, probed, counted against the storage quota), and the job points at the file
  (its ``input_file_id``) in the transaction that keeps it.

Outcomes, each a `FaktryError` whose code the failed job keeps (the runner releases its
hold; no file or row is left of a fetch that failed):

- ``url_refused``: the URL, or one it redirected to, names an address inside, or it
  redirected too often; logged with the reason, never retried;
- ``url_too_large``: the body is larger than the tier's upload limit;
- ``url_fetch_failed``: the server answered with an error, or the fetch failed (could not
  connect, timed out, name unknown); transient (retried like other transient errors) unless
  the server answered 4xx;
- ``unsupported_format``, ``invalid_media``, ``media_too_long``, ``storage_quota_exceeded``:
  as an upload of those bytes would be answered; ``unsupported_input``: media of a kind the
  job type does not take.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, sessionmaker

from faktry.config import Settings
from faktry.db import transaction
from faktry.errors import FaktryError, InvalidMedia, ValidationError
from pipelines import files
from pipelines.webhooks import safehttp
from quotas.limits import TierLimits, check_duration
from storage.interface import Storage
from storage.models import File

log = logging.getLogger("faktry.urlinputs")

#: The longest URL a job's input may give.
MAX_URL_LENGTH = 2048


class UrlRefused(FaktryError):
    """The URL, or one it redirected to, may not be fetched from here."""

    code = "url_refused"
    status = 422


class UrlTooLarge(FaktryError):
    code = "url_too_large"
    status = 413


class UrlFetchFailed(FaktryError):
    """The server's answer was an error that asking again will not change (4xx)."""

    code = "url_fetch_failed"
    status = 502


class UrlUnreachable(UrlFetchFailed):
    """The fetch failed in a way that may pass: a timeout, a refused connection, a 5xx."""

    transient = True


def check(url: str) -> str:
    """``url`` if a worker may try to fetch it; else a 422 naming ``input.url`` (code
    ``invalid_url``, or ``url_refused`` for an inside address written as a literal)."""
    if len(url) > MAX_URL_LENGTH or any(not (0x20 < ord(ch) < 0x7F) for ch in url):
        raise ValidationError(
            f"the URL must be at most {MAX_URL_LENGTH} characters of printable ASCII "
            "(percent-encode the path, punycode the host)",
            field="input.url",
            code="invalid_url",
        )
    try:
        _, host, _, _ = safehttp.check_url(url)
    except safehttp.Refused as err:
        raise ValidationError(str(err), field="input.url", code="invalid_url") from None
    literal = safehttp.literal_address(host)
    # Loopback is the worker's to decide (a test setting may allow it); the rest never is.
    if literal is not None and safehttp.blocked(literal, allow_loopback=True):
        raise ValidationError(f"{host} is not reachable from here", field="input.url", code="url_refused")
    return url


@dataclass(frozen=True)
class Input:
    """The library file a URL input became."""

    file_id: str
    storage_key: str
    kind: str
    media: dict[str, Any]
    #: Whether the tenant already had these bytes (nothing was stored).
    reused: bool


class _Hashing:
    """A file being written and the SHA-256 of what was written to it."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return int(self.out.write(data))


def fetch(
    sessions: sessionmaker[Session],
    storage: Storage,
    settings: Settings,
    *,
    tenant_id: str,
    url: str,
    workdir: Path,
    limits: TierLimits,
    accepts: Callable[[str], bool],
    record: Callable[[Session, str], None],
    resolve: safehttp.Resolver = safehttp.system_resolve,
) -> Input:
    """Fetch ``url`` into ``tenant_id``'s library (see the module's docstring). ``sessions``
    act for the tenant; ``accepts`` says whether the job takes a kind of media; ``record``
    points the job at the file, in the transaction that keeps it (raising there keeps
    nothing)."""
    workdir.mkdir(parents=True, exist_ok=True)
    staged = workdir / "url-input"
    with staged.open("wb") as out:
        sink = _Hashing(out)
        fetched = _get(url, sink, settings, limits, resolve)
    if fetched.size == 0:
        raise InvalidMedia("the URL's body is empty")
    digest = sink.sha256.hexdigest()
    with transaction(sessions) as session:
        same = _same_bytes(session, tenant_id, digest)
    if same is None:
        try:
            got = _store(
                sessions, storage, settings, staged, fetched, digest,
                tenant_id=tenant_id, limits=limits, accepts=accepts, record=record,
            )  # fmt: skip
        except _AlreadyThere as there:  # another job stored the same bytes meanwhile
            same = there.row
        else:
            log.info("url input: stored as %s (%d bytes)", got.file_id, fetched.size)
            return got
    with transaction(sessions) as session:
        _check_kind(accepts, same.kind)
        check_duration(limits, (same.media or {}).get("duration"))
        record(session, same.id)
    log.info("url input: the library's %s has the same bytes", same.id)
    return Input(same.id, same.storage_key, same.kind, dict(same.media or {}), reused=True)


class _AlreadyThere(Exception):
    def __init__(self, row: Row[Any]) -> None:
        super().__init__(row.id)
        self.row = row


def _store(
    sessions: sessionmaker[Session],
    storage: Storage,
    settings: Settings,
    staged: Path,
    fetched: safehttp.Fetched,
    digest: str,
    *,
    tenant_id: str,
    limits: TierLimits,
    accepts: Callable[[str], bool],
    record: Callable[[Session, str], None],
) -> Input:
    """The fetched bytes as a new upload of the tenant, the job pointed at it."""
    with (
        sessions() as session,
        files.ingest_upload(
            session,
            sessions,
            storage,
            tenant_id=tenant_id,
            limits=limits,
            staged=staged,
            filename=unquote(urlsplit(fetched.url).path.rsplit("/", 1)[-1]) or "download",
            probe_timeout=settings.probe_timeout,
            max_image_pixels=settings.max_image_pixels,
        ) as row,
    ):
        # The quota's bookkeeping holds the tenant's account lock now: a fetch of the same
        # bytes that committed first is seen here, and this copy is then undone.
        same = _same_bytes(session, tenant_id, digest, other_than=row.id)
        if same is not None:
            raise _AlreadyThere(same)
        _check_kind(accepts, row.kind)
        record(session, row.id)
        got = Input(row.id, row.storage_key, row.kind, dict(row.media or {}), reused=False)
        session.commit()
    return got


def _same_bytes(session: Session, tenant_id: str, digest: str, *, other_than: str = "") -> Row[Any] | None:
    """The tenant's first upload with these bytes, if any."""
    return session.execute(
        select(File.id, File.storage_key, File.kind, File.media)
        .where(
            File.tenant_id == tenant_id,
            File.sha256 == digest,
            File.origin == "upload",
            File.root_id.is_(None),
            File.id != other_than,
        )
        .order_by(File.created_at, File.id)
        .limit(1)
    ).first()


def _get(
    url: str, sink: _Hashing, settings: Settings, limits: TierLimits, resolve: safehttp.Resolver
) -> safehttp.Fetched:
    """The fetch itself, its failures turned into the errors a job fails (or retries) with."""
    seconds = settings.url_fetch_timeout_seconds
    http_limits = safehttp.Limits(
        connect_timeout=min(10.0, seconds),
        read_timeout=min(30.0, seconds),
        total_timeout=seconds,
        max_body=min(settings.max_upload_bytes, limits.max_upload_bytes),
        allow_loopback=settings.url_fetch_allow_loopback,
    )
    host = urlsplit(url).hostname or ""
    try:
        return safehttp.get(
            url,
            sink,
            http_limits,
            max_redirects=settings.url_fetch_max_redirects,
            headers={"User-Agent": "faktry-fetch/1"},
            resolve=resolve,
        )
    except safehttp.Refused as err:
        if err.code == "unresolvable":
            raise UrlUnreachable(str(err)) from None
        # Who asked for what, and why it was refused (the host only: a query may hold a secret).
        log.warning("url input refused (%s): host %s: %s", err.code, host, err)
        raise UrlRefused(f"the URL may not be fetched: {err}", details={"reason": err.code}) from None
    except safehttp.TooLarge:
        raise UrlTooLarge(
            f"the URL's body is larger than the {http_limits.max_body} bytes an upload may be",
            details={"limit": http_limits.max_body},
        ) from None
    except safehttp.BadStatus as err:
        failed = UrlUnreachable if err.status >= 500 or err.status in (408, 429) else UrlFetchFailed
        raise failed(f"fetching the URL failed: {err}", details={"status": err.status}) from None
    except (OSError, http.client.HTTPException) as err:
        raise UrlUnreachable(f"fetching the URL failed: {err or type(err).__name__}") from None


def _check_kind(accepts: Callable[[str], bool], kind: str) -> None:
    if not accepts(kind):
        raise FaktryError(
            f"the URL's {kind} is not an input this job type takes", code="unsupported_input", status=422
        )
