"""Objects that arrive in pieces: the storage side of a resumable upload.

One object is written in order, from byte 0 to its declared ``size``, by a series of
`append` calls that may run in different processes on different hosts: the bytes live in
storage, never in a process. Where the object has got to (its *offset*) is the caller's to
keep (pipelines/uploads keeps it in the database, the source of truth): each `append` is
told where to start, replaces whatever lies past that point (a crashed writer's bytes), and
returns the new offset once everything before it is durable. The caller runs one `append`
of an object at a time.

- `LocalGrowing` appends to one file under the storage root, fsyncing before it returns.
- `S3Growing` builds an S3 multipart upload in parts of `PART_SIZE` (S3's 5 MiB minimum),
  the scheme of tusd's s3store: a part is sent once it is whole; the bytes of a part not yet
  whole wait in a small *tail* object of their own, named after where the part starts
  (``<key>.parts/<start>``), and are read back and sent with the rest of that part by the
  next `append`. Because part ``n`` always holds bytes ``[(n-1)·PART_SIZE, n·PART_SIZE)``
  and a tail is never rewritten with other bytes than its own, a crash at any point leaves
  storage agreeing with the last offset the caller recorded: a part sent for bytes beyond it
  is sent again (S3 replaces a part of the same number), and the tail that offset needs is
  still there (older tails are removed only by `finish` and `discard`). A request holds at
  most one part in a temporary file (never in memory).

`finish` turns the pieces into the object under the key; `discard` removes them. What a
crash leaves, an expired upload's `discard` removes (and for S3, aborting an unknown
multipart upload: pipelines/uploads/sweep.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

from storage.interface import ObjectNotFound, Storage, check_key
from storage.local import LocalStorage
from storage.s3 import MIN_PART_SIZE, S3Storage

#: Bytes asked of the source at a time.
CHUNK = 1 << 16
#: S3: the size of every part but the last.
PART_SIZE = MIN_PART_SIZE
#: S3: a part being assembled stays in memory up to this size, then goes to a temporary file.
_SPOOL_BYTES = 1 << 20


class Interrupted(Exception):
    """The source failed part-way (a client that went away, a body that stalled): the bytes
    that arrived before are durable, up to ``offset``. The source's error is the cause."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the source failed at byte {offset}")
        self.offset = offset


class StopWriting(Exception):
    """Raised by a source to stop at once: what this `append` received is not kept (a writer
    that lost its lock must not touch the object again)."""


class Corrupt(Exception):
    """Storage holds fewer bytes than the offset the caller recorded: they were lost."""


Read = Callable[[int], bytes]


class Growing(Protocol):
    """An object written by appends at offsets the caller keeps (see the module docstring)."""

    def begin(self, key: str, *, content_type: str | None = None) -> str:
        """Start an empty object under `key`; returns the handle to pass to the other calls
        (an S3 multipart upload's id; empty for local storage)."""
        ...

    def append(self, key: str, handle: str, *, offset: int, size: int, read: Read) -> int:
        """Write what ``read(n)`` returns (until ``b""``, at most ``size - offset`` bytes) after
        byte ``offset``; return the new offset, everything before it durable. An exception
        from ``read`` raises `Interrupted` with the offset the durable bytes reach (or passes
        through, nothing kept, if it is a `StopWriting`); a storage failure passes through and
        the offset stays where it was. `Corrupt` if fewer than ``offset`` bytes are there."""
        ...

    def finish(self, key: str, handle: str, *, size: int) -> None:
        """All ``size`` bytes are in: make them the object under `key`."""
        ...

    def discard(self, key: str, handle: str) -> None:
        """Remove the object and its pieces. Idempotent."""
        ...


def growing(storage: Storage, *, tmp_dir: Path | None = None) -> Growing:
    """The `Growing` of a storage backend; ``tmp_dir`` holds S3's parts being assembled."""
    if isinstance(storage, LocalStorage):
        return LocalGrowing(storage)
    if isinstance(storage, S3Storage):
        return S3Growing(storage, tmp_dir=tmp_dir)
    raise TypeError(f"no resumable uploads on {storage!r}")


class _Arrivals:
    """The bytes ``read`` gives, in chunks, up to ``want`` of them. A `StopWriting` passes
    through; any other failure of the source ends the chunks and is kept on ``failed``, so
    that what arrived before it can be made durable first."""

    def __init__(self, read: Read, want: int) -> None:
        self._read = read
        self._left = want
        self.failed: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        while self._left > 0:
            try:
                chunk = self._read(min(CHUNK, self._left))
            except StopWriting:
                raise
            except BaseException as e:
                self.failed = e
                return
            if not chunk:
                return
            chunk = chunk[: self._left]
            self._left -= len(chunk)
            yield chunk

    def check(self, reached: int) -> None:
        """Raise `Interrupted` at ``reached`` if the source failed."""
        if self.failed is not None:
            raise Interrupted(reached) from self.failed


class LocalGrowing:
    """A growing object as one file under the storage root, fsynced before each offset."""

    def __init__(self, storage: LocalStorage) -> None:
        self.storage = storage

    def begin(self, key: str, *, content_type: str | None = None) -> str:
        self.storage.put_file(key, Path(os.devnull))
        return ""

    def append(self, key: str, handle: str, *, offset: int, size: int, read: Read) -> int:
        path = self.storage.root.joinpath(*check_key(key).split("/"))
        try:
            f = open(path, "r+b", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError as e:
            raise Corrupt(f"{key}: the partial object is gone") from e
        with f:
            held = os.fstat(f.fileno()).st_size
            if held < offset:
                raise Corrupt(f"{key}: {held} bytes stored, {offset} recorded")
            if held > offset:
                f.truncate(offset)  # a writer that died before its offset was recorded
            f.seek(offset)
            at, arrivals = offset, _Arrivals(read, size - offset)
            for chunk in arrivals:
                f.write(chunk)
                at += len(chunk)
            os.fsync(f.fileno())
        arrivals.check(at)
        return at

    def finish(self, key: str, handle: str, *, size: int) -> None:
        held = self.storage.size(key)
        if held != size:
            raise Corrupt(f"{key}: {held} bytes stored, {size} expected")

    def discard(self, key: str, handle: str) -> None:
        self.storage.delete(key)


class S3Growing:
    """A growing object as an S3 multipart upload plus one tail object (module docstring)."""

    def __init__(
        self, storage: S3Storage, *, tmp_dir: Path | None = None, part_size: int = PART_SIZE
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        self.storage = storage
        self.tmp_dir = tmp_dir
        self.part_size = part_size

    @staticmethod
    def tails(key: str) -> str:
        """The folder of `key`'s tail objects."""
        return f"{key}.parts/"

    def _tail(self, key: str, start: int) -> str:
        return f"{self.tails(key)}{start}"

    def begin(self, key: str, *, content_type: str | None = None) -> str:
        return self.storage.start_multipart(key, content_type=content_type)

    def append(self, key: str, handle: str, *, offset: int, size: int, read: Read) -> int:
        part = self.part_size
        number = offset // part + 1
        start = (number - 1) * part
        if self.tmp_dir is not None:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.SpooledTemporaryFile(
            _SPOOL_BYTES, dir=str(self.tmp_dir) if self.tmp_dir else None
        ) as buf:
            if offset > start:
                self._take_tail(key, start, offset - start, buf)
            at, arrivals = offset, _Arrivals(read, size - offset)
            for chunk in arrivals:
                while chunk:  # a chunk may end one part and begin the next
                    room = part - buf.tell()
                    buf.write(chunk[:room])
                    at += min(room, len(chunk))
                    chunk = chunk[room:]
                    if buf.tell() == part:
                        self._send(key, handle, number, buf)
                        number, start = number + 1, start + part
            if buf.tell():
                if at == size:
                    self._send(key, handle, number, buf)  # the last part may be short
                else:
                    buf.seek(0)
                    self.storage.put_stream(self._tail(key, start), cast(BinaryIO, _Limited(buf, at - start)))
        arrivals.check(at)
        return at

    def _take_tail(self, key: str, start: int, length: int, buf: IO[bytes]) -> None:
        """The first ``length`` bytes of the part starting at ``start``, from its tail."""
        taken = 0
        try:
            with self.storage.iter_chunks(self._tail(key, start), 1 << 20) as chunks:
                for chunk in chunks:
                    buf.write(chunk[: length - taken])
                    taken += min(len(chunk), length - taken)
                    if taken == length:
                        break
        except ObjectNotFound as e:
            raise Corrupt(f"{key}: the tail of the part at {start} is gone") from e
        if taken < length:
            raise Corrupt(f"{key}: the tail at {start} holds {taken} bytes, {length} recorded")

    def _send(self, key: str, handle: str, number: int, buf: IO[bytes]) -> None:
        length = buf.tell()
        buf.seek(0)
        # The buffer holds exactly the part, and is seekable: botocore may send it again.
        self.storage.upload_part(key, handle, number, cast(BinaryIO, buf), length)
        buf.seek(0)
        buf.truncate()

    def finish(self, key: str, handle: str, *, size: int) -> None:
        count = -(-size // self.part_size)
        listed = {p.number: p for p in self.storage.parts(key, handle)}
        wanted = [listed[n] for n in range(1, count + 1) if n in listed]
        if len(wanted) != count or sum(p.size for p in wanted) != size:
            raise Corrupt(f"{key}: the parts do not add up to {size} bytes")
        self.storage.complete_multipart(key, handle, [(p.number, p.etag) for p in wanted])
        self.storage.delete_prefix(self.tails(key))

    def discard(self, key: str, handle: str) -> None:
        if handle:
            self.storage.abort_multipart(key, handle)
        self.storage.delete_prefix(self.tails(key))
        self.storage.delete(key)


class _Limited:
    """At most ``length`` bytes of a stream, read from where it is (no seek: read once)."""

    def __init__(self, stream: IO[bytes], length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.read(size)
        self._left -= len(data)
        return data
