"""Where faktry keeps file bytes, behind one port (`Storage`) with a local and an S3 backend.

Build the backend once at a composition root with `from_url(settings.storage_url, ...)` and pass
it down; nothing here reads the environment or opens connections at import time.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from faktry.config import Settings
from storage.interface import Chunks, ObjectNotFound, Storage, check_key, check_prefix
from storage.local import LocalStorage
from storage.s3 import S3Storage

__all__ = [
    "Chunks",
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "check_key",
    "check_prefix",
    "from_settings",
    "from_url",
]


def from_url(
    url: str,
    *,
    tmp_dir: Path,
    s3_endpoint_url: str | None = None,
    s3_region: str = "us-east-1",
    s3_access_key_id: str | None = None,
    s3_secret_access_key: str | None = None,
) -> Storage:
    """The storage backend a URL names.

    - `file:///abs/path` — `LocalStorage` rooted at `/abs/path`;
    - `file:rel/path` — `LocalStorage` rooted at `rel/path` under the current directory, made
      absolute now so a later `chdir` does not move it;
    - `s3://bucket` or `s3://bucket/key/prefix` — `S3Storage`, with the `s3_*` arguments;
      `tmp_dir` holds its temporary local copies.

    Anything else (other schemes, a host in a file URL, a query or fragment) raises `ValueError`.
    No I/O happens here; call `ping()` to check the backend.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"storage URL must not have a query or fragment: {url!r}")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file storage URL must not name a host: {url!r}")
        path = unquote(parts.path)
        if not path:
            raise ValueError(f"file storage URL has no path: {url!r}")
        return LocalStorage(Path(path).absolute())
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"s3 storage URL has no bucket: {url!r}")
        return S3Storage(
            parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            endpoint_url=s3_endpoint_url or None,
            region=s3_region,
            access_key_id=s3_access_key_id,
            secret_access_key=s3_secret_access_key,
            tmp_dir=tmp_dir,
        )
    raise ValueError(f"unsupported storage URL (use file:... or s3://...): {url!r}")


def from_settings(settings: Settings) -> Storage:
    """The storage that faktry's settings describe (``FAKTRY_STORAGE_URL`` and the S3 ones)."""
    return from_url(
        settings.resolved_storage_url,
        tmp_dir=settings.tmp_dir,
        s3_endpoint_url=settings.s3_endpoint_url or None,
        s3_region=settings.s3_region,
        s3_access_key_id=settings.s3_access_key_id or None,
        s3_secret_access_key=settings.s3_secret_access_key or None,
    )
