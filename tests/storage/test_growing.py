"""Objects that arrive in pieces (`storage.growing`) and `Storage.move`, run against every
backend (local disk, and S3 through moto over loopback): appends in any sizes make exactly
the bytes sent, across S3's part boundaries; an append resumes at the offset the caller
recorded, whatever a writer that died left past it; a source that fails part-way keeps what
arrived; discarding leaves nothing."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import pytest

from storage import ObjectNotFound, S3Storage, Storage
from storage.growing import Corrupt, Interrupted, StopWriting, growing
from storage.s3 import MIN_PART_SIZE

KEY = "t/tenant-1/uploads/upl_1/data"
PART = MIN_PART_SIZE


def source(
    data: bytes, fail_after: int | None = None, error: type[BaseException] = ConnectionError
) -> Callable[[int], bytes]:
    """``read`` over ``data``; with ``fail_after``, raising once that many bytes were read."""
    stream = io.BytesIO(data)

    def read(n: int) -> bytes:
        if fail_after is not None and stream.tell() >= fail_after:
            raise error("the client went away")
        if fail_after is not None:
            n = min(n, fail_after - stream.tell())
        return stream.read(n)

    return read


def left_behind(storage: Storage) -> list[str]:
    found = list(storage.list("t/"))
    if isinstance(storage, S3Storage):
        found += [u.key for u in storage.multipart_uploads("t/")]
    return found


def test_appends_of_any_size_make_exactly_the_bytes_sent(storage: Storage) -> None:
    data = os.urandom(2 * PART + 12345)
    pieces = growing(storage)
    handle = pieces.begin(KEY)
    offset = 0
    # Ends inside a part, on a part's end, and across one.
    for end in (PART - 10, PART, 2 * PART + 100, len(data)):
        offset = pieces.append(KEY, handle, offset=offset, size=len(data), read=source(data[offset:end]))
        assert offset == end
    pieces.finish(KEY, handle, size=len(data))
    assert storage.read_bytes(KEY) == data
    assert left_behind(storage) == [KEY]


def test_an_append_replaces_what_a_writer_that_died_left_past_the_recorded_offset(storage: Storage) -> None:
    data = os.urandom(PART + 5000)
    pieces = growing(storage)
    handle = pieces.begin(KEY)
    recorded = pieces.append(KEY, handle, offset=0, size=len(data), read=source(data[:3000]))
    # A writer that sent other bytes past the recorded offset, then died before recording.
    pieces.append(KEY, handle, offset=recorded, size=len(data), read=source(os.urandom(PART)))
    done = pieces.append(KEY, handle, offset=recorded, size=len(data), read=source(data[recorded:]))
    assert done == len(data)
    pieces.finish(KEY, handle, size=len(data))
    assert storage.read_bytes(KEY) == data


def test_a_source_that_fails_part_way_keeps_what_arrived(storage: Storage) -> None:
    data = os.urandom(PART + 7000)
    pieces = growing(storage)
    handle = pieces.begin(KEY)
    with pytest.raises(Interrupted) as cut:
        pieces.append(KEY, handle, offset=0, size=len(data), read=source(data, fail_after=PART + 10))
    assert cut.value.offset == PART + 10 and isinstance(cut.value.__cause__, ConnectionError)
    done = pieces.append(KEY, handle, offset=cut.value.offset, size=len(data), read=source(data[PART + 10 :]))
    assert done == len(data)
    pieces.finish(KEY, handle, size=len(data))
    assert storage.read_bytes(KEY) == data


def test_a_source_that_stops_writing_keeps_nothing_new(storage: Storage) -> None:
    data = os.urandom(1000)
    pieces = growing(storage)
    handle = pieces.begin(KEY)
    with pytest.raises(StopWriting):
        pieces.append(
            KEY, handle, offset=0, size=len(data), read=source(data, fail_after=500, error=StopWriting)
        )


def test_fewer_bytes_than_recorded_are_reported_corrupt(storage: Storage) -> None:
    pieces = growing(storage)
    handle = pieces.begin(KEY)
    with pytest.raises(Corrupt):
        pieces.append(KEY, handle, offset=100, size=1000, read=source(b"x" * 900))


def test_discarding_leaves_nothing(storage: Storage) -> None:
    data = os.urandom(PART + 10)
    pieces = growing(storage)
    handle = pieces.begin(KEY)
    pieces.append(KEY, handle, offset=0, size=len(data) + 10, read=source(data))
    pieces.discard(KEY, handle)
    pieces.discard(KEY, handle)  # idempotent
    assert left_behind(storage) == []


def test_move_gives_an_object_another_key(storage: Storage) -> None:
    storage.put_stream(KEY, io.BytesIO(b"moved bytes"))
    storage.move(KEY, "t/tenant-1/files/fil_1/original.mp4", content_type="video/mp4")
    assert storage.read_bytes("t/tenant-1/files/fil_1/original.mp4") == b"moved bytes"
    assert not storage.exists(KEY)
    with pytest.raises(ObjectNotFound):
        storage.move(KEY, "t/tenant-1/files/fil_2/original.mp4")
