"""The storage port: a flat namespace of immutable-ish objects addressed by relative keys.

Keys look like paths (`t/<tenant_id>/files/<file_id>/data`,
`t/<tenant>/jobs/<job>/a3/hls/720p/seg0.ts`) and mean the same thing on every backend.
`LocalStorage` (a directory) and `S3Storage` (a bucket) implement it; the conformance suite in
`tests/storage/test_conformance.py` runs every behaviour below against both.

Errors callers must handle:

- `ValueError` — the key or prefix is malformed (see `check_key`). A programming error; never retry.
- `ObjectNotFound` — the object does not exist (a `faktry.errors.NotFound`, 404).
- `faktry.errors.TransientError` — the backend is unreachable or failed; retry with backoff.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from faktry.errors import NotFound

#: Longest key accepted. S3 allows 1024 UTF-8 bytes; the rest is headroom for a bucket prefix.
MAX_KEY_LENGTH = 900

#: Default chunk size for `Storage.iter_chunks`.
CHUNK_SIZE = 1 << 16

# C0 control characters (NUL, newline, ...) and DEL: never meaningful in a key, dangerous in logs
# and HTTP headers.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class ObjectNotFound(NotFound):
    """No object is stored under the key.

    The key is kept on `.key` but left out of the message and `details`: keys name tenants and
    internal ids, and this error may reach a client.
    """

    def __init__(self, key: str) -> None:
        super().__init__("The stored object does not exist.")
        self.key = key

    def __repr__(self) -> str:
        return f"ObjectNotFound({self.key!r})"


def check_key(key: str) -> str:
    """Return `key` unchanged if it is a valid object key, else raise `ValueError`.

    A key is a non-empty relative path of `/`-separated segments: at most `MAX_KEY_LENGTH`
    characters, no leading or trailing `/`, no empty, `.` or `..` segment, no backslash and no
    control character (NUL included). These rules keep a key from escaping the local root and
    make one key name the same object on every backend (`a/./b` would be `a/b` on disk only).
    """
    if not isinstance(key, str):
        raise ValueError(f"storage key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("storage key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key is longer than {MAX_KEY_LENGTH} characters")
    if "\\" in key:
        raise ValueError(f"storage key must not contain a backslash: {key!r}")
    if _CONTROL_CHARS.search(key):
        raise ValueError(f"storage key must not contain control characters: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"storage key must be relative: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"storage key has an empty, '.' or '..' segment: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Return `prefix` unchanged if it is a valid listing prefix, else raise `ValueError`.

    A prefix is a valid key followed by `/`, so `a/` can never match `ab/x`.
    """
    if not isinstance(prefix, str) or not prefix.endswith("/"):
        raise ValueError(f"storage prefix must end with '/': {prefix!r}")
    check_key(prefix[:-1])
    return prefix


@dataclass(frozen=True)
class Stored:
    """What `Storage.store_file` stored: the object's size in bytes and its SHA-256 (hex)."""

    size: int
    sha256: str


class HashingReader:
    """A read-only view of a stream that hashes (SHA-256) and counts the bytes read through it.

    It has no `seek`, so a reader such as s3transfer reads each byte exactly once and in order.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def stored(self) -> Stored:
        return Stored(self.size, self._digest.hexdigest())


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class Chunks(Iterator[bytes], AbstractContextManager["Chunks"]):
    """An iterator over an open object's bytes that owns the underlying handle.

    The handle is closed when the iterator is exhausted, on `close()`, or on leaving a `with`
    block. WSGI servers call `close()` on response iterables, so a `Chunks` can be returned as a
    Flask response body directly.
    """

    def __init__(self, body: Readable, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._body: Readable | None = body
        self._chunk_size = chunk_size

    def __iter__(self) -> Chunks:
        return self

    def __next__(self) -> bytes:
        if self._body is None:
            raise StopIteration
        try:
            chunk = self._body.read(self._chunk_size)
        except BaseException:
            self.close()
            raise
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Storage(Protocol):
    """Where faktry keeps file bytes: uploads, intermediate artefacts and job outputs.

    Every method validates its key with `check_key` (prefixes with `check_prefix`) before any
    I/O and raises `ValueError` for a bad one. Backend failures surface as
    `faktry.errors.TransientError`; a missing object as `ObjectNotFound`. Implementations are safe
    to share between threads, and to construct before a fork and use after it.
    """

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Store the local file at `path` under `key`, replacing any existing object.

        Atomic from a reader's view: a concurrent reader sees the old object, or none, or the
        whole new one, never a partial write. `content_type` is recorded where the backend can
        (S3); local storage ignores it. A missing `path` raises `FileNotFoundError`.
        """
        ...

    def store_file(
        self, key: str, path: Path, *, content_type: str | None = None, move: bool = False
    ) -> Stored:
        """Store the local file at `path` under `key` as `put_file` does, and return its size
        and SHA-256. The file is read once: the hash comes from the read that copies or uploads
        it, or, where local storage renames the file instead, from one read just before the
        rename (a freshly written file is still in the page cache then).

        With `move`, the caller gives the file away: on success `path` no longer exists. Local
        storage renames the file into place when `path` is a plain file on the storage's
        filesystem (no copy), else copies it and removes `path`; S3 uploads it and removes
        `path`. On failure, and without `move`, `path` is left as it was.
        Same atomicity as `put_file`; a missing `path` raises `FileNotFoundError`.
        """
        ...

    def put_stream(self, key: str, stream: BinaryIO, *, content_type: str | None = None) -> int:
        """Store everything readable from `stream` under `key` and return the number of bytes.

        The stream is read in bounded chunks, never held whole in memory, and is not closed.
        Same atomicity as `put_file`.
        """
        ...

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Chunks:
        """Open `key` and return an iterator over its bytes, in chunks of at most `chunk_size`.

        Opening happens now: `ObjectNotFound` is raised by this call, not by the first `next()`,
        so a web view can answer 404 before starting a response. The returned `Chunks` holds an
        open handle: exhaust it, close it, or use it in a `with` block.
        """
        ...

    def read_bytes(self, key: str) -> bytes:
        """Return the whole object. Only for small objects (manifests, thumbnails, JSON)."""
        ...

    def download(self, key: str, dest: Path) -> None:
        """Copy the object to the local file `dest`, replacing it. `dest`'s directory must exist."""
        ...

    def local_path(self, key: str, into: Path | None = None) -> AbstractContextManager[Path]:
        """Context manager yielding a local file path holding the object's bytes.

        Hand this path, never a URL, to tools such as ffmpeg. Local storage yields the stored
        file itself (no copy): treat it as read-only and do not use it after the block. S3
        downloads to a temporary file (keeping the key's extension, which tools use to guess the
        format) in the folder ``into`` (default: the storage's temp folder) and removes it when
        the block exits, whether or not it raised.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`. A key that is only a prefix of others is not."""
        ...

    def size(self, key: str) -> int:
        """The object's size in bytes; `ObjectNotFound` if it does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object. Deleting a missing object is not an error (idempotent)."""
        ...

    def move(self, src: str, dst: str, *, content_type: str | None = None) -> None:
        """Give the object under `src` the key `dst` (replacing any object there) and remove
        `src`; `ObjectNotFound` if `src` does not exist. The bytes never pass through this
        process: local storage renames the file, S3 copies the object on the server (in parts
        when it is large) and then deletes `src`. Readers of `dst` see the whole object or the
        one before; a failure may leave the object under both keys, never under neither."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix` and return how many were removed.

        `prefix` must end with `/`; `a/` never touches `ab/x`. Idempotent: a second call returns 0.
        Objects written concurrently under the prefix may or may not survive.
        """
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys under `prefix` (which must end with `/`), sorted by code point.

        The order is the same on every backend (S3 lists in UTF-8 byte order, which agrees).
        """
        ...

    def presigned_url(
        self,
        key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        """A URL a browser can GET the object from for `expires_in` seconds, or None.

        None means the backend cannot serve clients itself (local storage): the web layer must
        stream the bytes with `iter_chunks` instead. `filename` sets an attachment
        Content-Disposition and `content_type` the response Content-Type. The URL is not checked
        against the object: a missing key yields a URL that answers 404.
        """
        ...

    def ping(self) -> None:
        """Return if the backend is reachable and usable, else raise `TransientError`."""
        ...
