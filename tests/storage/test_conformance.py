"""The `Storage` contract, run against every backend (see the `storage` fixture)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
import requests

import storage.s3 as storage_s3
from storage import ObjectNotFound, Storage

KEY = "t/tenant-1/files/file-1/data"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def put(storage: Storage, key: str, data: bytes) -> None:
    storage.put_stream(key, io.BytesIO(data))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class OneByteAtATime(io.RawIOBase):
    """A non-seekable stream that never returns more than a few bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._pos : self._pos + min(len(buffer), 3)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


# -- writing and reading back ---------------------------------------------------------------


def test_put_file_then_read_bytes_returns_the_same_bytes(storage: Storage, tmp_path: Path) -> None:
    storage.put_file(KEY, write(tmp_path / "in.bin", b"hello world"), content_type="text/plain")
    assert storage.read_bytes(KEY) == b"hello world"


def test_put_stream_returns_the_number_of_bytes_written(storage: Storage) -> None:
    data = os.urandom(100_000)
    assert storage.put_stream(KEY, io.BytesIO(data)) == len(data)
    assert storage.read_bytes(KEY) == data


def test_put_stream_reads_a_non_seekable_stream_to_the_end(storage: Storage) -> None:
    data = b"0123456789" * 100
    assert storage.put_stream(KEY, io.BufferedReader(OneByteAtATime(data), 7)) == len(data)
    assert storage.read_bytes(KEY) == data


def test_an_empty_object_round_trips(storage: Storage) -> None:
    assert storage.put_stream(KEY, io.BytesIO(b"")) == 0
    assert storage.exists(KEY)
    assert storage.size(KEY) == 0
    assert storage.read_bytes(KEY) == b""
    assert list(storage.iter_chunks(KEY)) == []


def test_putting_again_replaces_the_object(storage: Storage) -> None:
    put(storage, KEY, b"first version, longer")
    put(storage, KEY, b"second")
    assert storage.read_bytes(KEY) == b"second"


def test_iter_chunks_yields_the_bytes_in_chunks_of_at_most_chunk_size(storage: Storage) -> None:
    data = os.urandom(10_000)
    put(storage, KEY, data)
    chunks = list(storage.iter_chunks(KEY, chunk_size=4096))
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= 4096 for c in chunks)


def test_iter_chunks_can_be_closed_before_the_end(storage: Storage) -> None:
    put(storage, KEY, os.urandom(10_000))
    with storage.iter_chunks(KEY, chunk_size=1000) as chunks:
        assert len(next(chunks)) == 1000
    assert list(chunks) == []


def test_download_writes_the_object_to_a_local_file(storage: Storage, tmp_path: Path) -> None:
    put(storage, KEY, b"payload")
    dest = write(tmp_path / "out.bin", b"old content that is longer than the new")
    storage.download(KEY, dest)
    assert dest.read_bytes() == b"payload"


def test_a_large_object_survives_put_file_and_download_unchanged(storage: Storage, tmp_path: Path) -> None:
    # 12 MiB is above S3Storage's multipart threshold, so S3 stores it in two parts.
    src = write(tmp_path / "big.bin", os.urandom(12 * 1024 * 1024))
    storage.put_file("t/1/big.bin", src)
    assert storage.size("t/1/big.bin") == src.stat().st_size
    storage.download("t/1/big.bin", tmp_path / "back.bin")
    assert sha256(tmp_path / "back.bin") == sha256(src)
    with storage.local_path("t/1/big.bin") as path:
        assert sha256(path) == sha256(src)


def test_local_path_yields_a_readable_file_with_the_object_bytes(storage: Storage) -> None:
    key = "t/1/jobs/2/a3/hls/720p/seg0.ts"
    put(storage, key, b"segment bytes")
    with storage.local_path(key) as path:
        assert path.read_bytes() == b"segment bytes"
        assert path.suffix == ".ts"


def test_local_path_on_s3_is_a_temporary_copy_removed_after_the_block(storage: Storage, backend: str) -> None:
    put(storage, KEY, b"bytes")
    with storage.local_path(KEY) as path:
        pass
    assert path.exists() == (backend == "local")  # local yields the stored file itself


def test_local_path_temporary_copy_is_removed_even_when_the_block_raises(
    storage: Storage, backend: str
) -> None:
    put(storage, KEY, b"bytes")
    with pytest.raises(RuntimeError, match="ffmpeg crashed"), storage.local_path(KEY) as path:
        raise RuntimeError("ffmpeg crashed")
    assert path.exists() == (backend == "local")
    assert storage.read_bytes(KEY) == b"bytes"


# -- metadata -------------------------------------------------------------------------------


def test_size_is_the_number_of_bytes_stored(storage: Storage) -> None:
    put(storage, KEY, b"x" * 1234)
    assert storage.size(KEY) == 1234


def test_exists_is_true_only_for_stored_objects(storage: Storage) -> None:
    assert not storage.exists(KEY)
    put(storage, KEY, b"x")
    assert storage.exists(KEY)


def test_a_key_that_is_only_a_prefix_of_other_keys_is_not_an_object(storage: Storage) -> None:
    put(storage, "t/1/files/a/data", b"x")
    assert not storage.exists("t/1/files/a")
    with pytest.raises(ObjectNotFound):
        storage.size("t/1/files/a")
    with pytest.raises(ObjectNotFound):
        storage.read_bytes("t/1/files/a")
    storage.delete("t/1/files/a")
    assert storage.exists("t/1/files/a/data")


# -- missing objects ------------------------------------------------------------------------


def test_reading_a_missing_object_raises_object_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        storage.read_bytes(KEY)
    with pytest.raises(ObjectNotFound):
        storage.size(KEY)
    with pytest.raises(ObjectNotFound):
        storage.download(KEY, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(ObjectNotFound), storage.local_path(KEY):
        pass


def test_iter_chunks_raises_object_not_found_when_called_not_when_iterated(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.iter_chunks(KEY)


def test_object_not_found_is_a_faktry_not_found_that_keeps_the_key_out_of_its_message(
    storage: Storage,
) -> None:
    from faktry.errors import NotFound

    with pytest.raises(NotFound) as caught:
        storage.read_bytes(KEY)
    assert isinstance(caught.value, ObjectNotFound)
    assert caught.value.key == KEY
    assert caught.value.status == 404
    assert "tenant-1" not in str(caught.value.to_dict())


def test_local_path_leaves_no_temporary_file_when_the_object_is_missing(
    storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(ObjectNotFound), storage.local_path(KEY):
        pass
    leftovers = list((tmp_path / "s3-tmp").glob("*")) if (tmp_path / "s3-tmp").exists() else []
    assert leftovers == []


# -- deleting -------------------------------------------------------------------------------


def test_delete_removes_the_object_and_is_idempotent(storage: Storage) -> None:
    put(storage, KEY, b"x")
    storage.delete(KEY)
    assert not storage.exists(KEY)
    storage.delete(KEY)
    storage.delete("t/never/existed")


def test_delete_prefix_removes_everything_under_it_and_counts(storage: Storage) -> None:
    for key in ["t/1/jobs/9/a", "t/1/jobs/9/hls/720p/seg0.ts", "t/1/jobs/9/hls/720p/seg1.ts"]:
        put(storage, key, b"x")
    assert storage.delete_prefix("t/1/jobs/9/") == 3
    assert list(storage.list("t/1/")) == []
    assert storage.delete_prefix("t/1/jobs/9/") == 0


def test_delete_prefix_leaves_siblings_that_share_the_prefix_text_alone(storage: Storage) -> None:
    for key in ["a/x", "a/y/z", "ab/x", "a.txt/x", "b/a/x"]:
        put(storage, key, b"x")
    assert storage.delete_prefix("a/") == 2
    assert list(storage.list("ab/")) == ["ab/x"]
    assert storage.exists("a.txt/x")
    assert storage.exists("b/a/x")
    assert not storage.exists("a/x")


def test_delete_prefix_and_list_go_through_several_pages_and_delete_batches(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrink S3's page (1000) and delete batch (1000) so a few objects cross both boundaries;
    # tests/storage/test_s3.py does the same with the real sizes.
    monkeypatch.setattr(storage_s3, "_LIST_PAGE_SIZE", 4)
    monkeypatch.setattr(storage_s3, "_DELETE_BATCH", 3)
    keys = [f"t/1/jobs/5/frames/{i:05d}.png" for i in range(11)]
    for key in keys:
        put(storage, key, b"")
    put(storage, "t/1/jobs/50/keep", b"")
    assert list(storage.list("t/1/jobs/5/")) == keys
    assert storage.delete_prefix("t/1/jobs/5/") == len(keys)
    assert list(storage.list("t/1/")) == ["t/1/jobs/50/keep"]


# -- listing --------------------------------------------------------------------------------


def test_list_yields_the_keys_under_the_prefix_sorted(storage: Storage) -> None:
    keys = ["t/1/b", "t/1/a/z", "t/1/a-c", "t/1/a/b", "t/1/A", "t/1/é", "t/2/a", "t/10/a"]
    for key in keys:
        put(storage, key, b"x")
    # '-' sorts before '/' and 'é' after 'z': plain code-point order on every backend.
    assert list(storage.list("t/1/")) == ["t/1/A", "t/1/a-c", "t/1/a/b", "t/1/a/z", "t/1/b", "t/1/é"]
    assert list(storage.list("t/")) == sorted(keys)
    assert list(storage.list("nothing/here/")) == []


# -- key validation -------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/t/1/data",
    "t/1/",
    "t//1",
    "t/../1",
    "..",
    "t/./1",
    "t\\1",
    "t/1\x00",
    "t/1\nx",
    "k" * 901,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_method_rejects_a_malformed_key_with_value_error(
    storage: Storage, key: str, tmp_path: Path
) -> None:
    src = write(tmp_path / "in.bin", b"x")
    calls = [
        lambda: storage.put_file(key, src),
        lambda: storage.put_stream(key, io.BytesIO(b"x")),
        lambda: storage.iter_chunks(key),
        lambda: storage.read_bytes(key),
        lambda: storage.download(key, tmp_path / "out.bin"),
        lambda: storage.local_path(key).__enter__(),
        lambda: storage.exists(key),
        lambda: storage.size(key),
        lambda: storage.delete(key),
        lambda: storage.presigned_url(key, expires_in=60),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("prefix", ["", "a", "/a/", "a//", "../", "a/../b/"])
def test_list_and_delete_prefix_reject_a_prefix_not_ending_in_a_slash_or_malformed(
    storage: Storage, prefix: str
) -> None:
    with pytest.raises(ValueError):
        storage.list(prefix)
    with pytest.raises(ValueError):
        storage.delete_prefix(prefix)


def test_a_key_of_exactly_900_characters_is_accepted(storage: Storage) -> None:
    key = "/".join(["k" * 100] * 8) + "/" + "k" * 92  # segments stay under the 255-byte name limit
    assert len(key) == 900
    put(storage, key, b"x")
    assert storage.read_bytes(key) == b"x"


# -- presigned URLs and health --------------------------------------------------------------


def test_presigned_url_serves_the_body_with_disposition_on_s3_and_is_none_on_local(
    storage: Storage, backend: str
) -> None:
    put(storage, KEY, b"the body")
    url = storage.presigned_url(KEY, expires_in=300, filename="clip 1 «final».mp4", content_type="video/mp4")
    if backend == "local":
        assert url is None
        return
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"the body"
    assert response.headers["Content-Type"] == "video/mp4"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''clip%201%20%C2%ABfinal%C2%BB.mp4" in disposition


def test_ping_succeeds_on_a_reachable_backend(storage: Storage) -> None:
    storage.ping()
