"""`Storage.store_file`: storing a file and getting its size and SHA-256 from the same read.

The first part runs against every backend (the `storage` fixture), like `test_conformance.py`;
the rest checks how each backend does it: local storage renames a file it may move, S3 reads
it once while uploading.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from storage import LocalStorage, S3Storage, Storage
from storage.interface import Stored

KEY = "t/tenant-1/jobs/job-1/a1/media/video.mp4"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def facts(data: bytes) -> Stored:
    return Stored(len(data), hashlib.sha256(data).hexdigest())


# -- every backend ---------------------------------------------------------------------------


@pytest.mark.parametrize("move", [False, True])
def test_store_file_returns_the_size_and_sha256_of_what_it_stored(
    storage: Storage, tmp_path: Path, move: bool
) -> None:
    data = os.urandom(300_000)
    assert storage.store_file(KEY, write(tmp_path / "out.bin", data), move=move) == facts(data)
    assert storage.read_bytes(KEY) == data


@pytest.mark.parametrize("move", [False, True])
def test_store_file_hashes_a_multipart_file_whole(storage: Storage, tmp_path: Path, move: bool) -> None:
    # 12 MiB is above S3Storage's multipart threshold: the hash must follow every part, in order.
    data = os.urandom(12 * 1024 * 1024)
    assert storage.store_file(KEY, write(tmp_path / "big.bin", data), move=move) == facts(data)
    assert storage.size(KEY) == len(data)
    with storage.local_path(KEY) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == facts(data).sha256


def test_store_file_of_an_empty_file_gives_the_empty_hash(storage: Storage, tmp_path: Path) -> None:
    assert storage.store_file(KEY, write(tmp_path / "empty", b""), move=True) == facts(b"")
    assert storage.exists(KEY)
    assert storage.read_bytes(KEY) == b""


def test_store_file_without_move_leaves_the_file_as_it_was(storage: Storage, tmp_path: Path) -> None:
    src = write(tmp_path / "out.bin", b"kept")
    storage.store_file(KEY, src)
    assert src.read_bytes() == b"kept"


def test_store_file_with_move_takes_the_file_away(storage: Storage, tmp_path: Path) -> None:
    src = write(tmp_path / "out.bin", b"given away")
    storage.store_file(KEY, src, content_type="video/mp4", move=True)
    assert not src.exists()
    assert storage.read_bytes(KEY) == b"given away"


def test_store_file_replaces_an_existing_object(storage: Storage, tmp_path: Path) -> None:
    storage.store_file(KEY, write(tmp_path / "first", b"first version, longer"), move=True)
    assert storage.store_file(KEY, write(tmp_path / "second", b"second"), move=True) == facts(b"second")
    assert storage.read_bytes(KEY) == b"second"


@pytest.mark.parametrize("move", [False, True])
def test_store_file_of_a_missing_file_raises_file_not_found_and_stores_nothing(
    storage: Storage, tmp_path: Path, move: bool
) -> None:
    with pytest.raises(FileNotFoundError):
        storage.store_file(KEY, tmp_path / "missing.bin", move=move)
    assert not storage.exists(KEY)


def test_store_file_checks_the_key_before_touching_the_file(storage: Storage, tmp_path: Path) -> None:
    src = write(tmp_path / "out.bin", b"x")
    with pytest.raises(ValueError):
        storage.store_file("../escape", src, move=True)
    assert src.read_bytes() == b"x"


# -- local storage: a rename where it can ----------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "root")


def test_local_store_file_with_move_renames_the_file_instead_of_copying_it(
    local: LocalStorage, tmp_path: Path
) -> None:
    src = write(tmp_path / "out.bin", b"bytes written by ffmpeg")
    inode = src.stat().st_ino
    assert local.store_file(KEY, src, move=True) == facts(b"bytes written by ffmpeg")
    with local.local_path(KEY) as stored:
        assert stored.stat().st_ino == inode
    assert [p.name for p in stored.parent.iterdir()] == ["video.mp4"]  # no temporary file left


def test_local_store_file_without_move_copies(local: LocalStorage, tmp_path: Path) -> None:
    src = write(tmp_path / "out.bin", b"x")
    local.store_file(KEY, src)
    with local.local_path(KEY) as stored:
        assert stored.stat().st_ino != src.stat().st_ino


def test_local_store_file_copies_when_the_rename_crosses_filesystems(
    local: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two mounts of one filesystem share a device number, yet refuse a rename between them."""
    data = os.urandom(50_000)
    src = write(tmp_path / "out.bin", data)
    real_replace = os.replace

    def no_rename_from_out(a: Any, b: Any) -> None:
        if Path(a) == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", no_rename_from_out)
    assert local.store_file(KEY, src, move=True) == facts(data)
    assert local.read_bytes(KEY) == data
    assert not src.exists()


def test_local_store_file_copies_from_another_filesystem(local: LocalStorage, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a writable /dev/shm on a filesystem of its own")
    data = os.urandom(50_000)
    src = write(shm / f"faktry-test-{os.getpid()}-{tmp_path.name}", data)
    try:
        assert local.store_file(KEY, src, move=True) == facts(data)
        assert local.read_bytes(KEY) == data
        assert not src.exists()
    finally:
        src.unlink(missing_ok=True)


def test_local_store_file_copies_a_symlinks_target_and_never_moves_it(
    local: LocalStorage, tmp_path: Path
) -> None:
    target = write(tmp_path / "elsewhere.bin", b"not the step's own file")
    link = tmp_path / "out.bin"
    link.symlink_to(target)
    assert local.store_file(KEY, link, move=True) == facts(b"not the step's own file")
    with local.local_path(KEY) as stored:
        assert not stored.is_symlink()
        assert stored.stat().st_ino != target.stat().st_ino
    assert target.read_bytes() == b"not the step's own file"
    assert not link.exists() and not link.is_symlink()


def test_local_store_file_copies_a_file_with_another_name(local: LocalStorage, tmp_path: Path) -> None:
    """A hard-linked file could be changed later through its other name: the object gets a copy."""
    src = write(tmp_path / "out.bin", b"original")
    other = tmp_path / "other-name.bin"
    os.link(src, other)
    local.store_file(KEY, src, move=True)
    other.write_bytes(b"changed!")
    assert local.read_bytes(KEY) == b"original"


def test_local_store_file_refuses_a_key_clashing_with_an_object_and_keeps_the_file(
    local: LocalStorage, tmp_path: Path
) -> None:
    local.store_file("t/1/a", write(tmp_path / "a", b"x"), move=True)
    src = write(tmp_path / "b", b"y")
    with pytest.raises(ValueError, match="clashes"):
        local.store_file("t/1/a/b", src, move=True)
    local.store_file("t/2/a/b", write(tmp_path / "c", b"z"), move=True)
    with pytest.raises(ValueError, match="directory"):
        local.store_file("t/2/a", src, move=True)
    assert src.read_bytes() == b"y"
    assert list(local.list("t/")) == ["t/1/a", "t/2/a/b"]


# -- S3: one streamed read --------------------------------------------------------------------


def test_s3_store_file_reads_the_file_once_and_records_the_content_type(
    s3_storage: S3Storage, s3_admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(9 * 1024 * 1024)  # two parts
    src = write(tmp_path / "big.bin", data)
    read = 0
    real_open = open

    class Counted:
        def __init__(self, f: Any) -> None:
            self._f = f

        def read(self, size: int = -1) -> bytes:
            nonlocal read
            chunk = self._f.read(size)
            read += len(chunk)
            return chunk

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            self._f.close()

    def counted_open(path: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        f = real_open(path, mode, *args, **kw)
        return Counted(f) if Path(path) == src else f

    monkeypatch.setattr("builtins.open", counted_open)
    assert s3_storage.store_file(KEY, src, content_type="video/mp4", move=True) == facts(data)
    monkeypatch.undo()
    assert read == len(data)
    head = s3_admin.head_object(Bucket=s3_storage.bucket, Key=KEY)
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].strip('"').endswith("-2")
