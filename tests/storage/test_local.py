"""LocalStorage-only behaviour: the files on disk, temporary names, directory housekeeping."""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import pytest

from faktry.errors import TransientError
from storage import LocalStorage


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def local(root: Path) -> LocalStorage:
    return LocalStorage(root)


def test_an_object_is_the_file_at_its_key_under_the_root(local: LocalStorage, root: Path) -> None:
    local.put_stream("t/1/files/2/data", io.BytesIO(b"x"))
    assert (root / "t" / "1" / "files" / "2" / "data").read_bytes() == b"x"


def test_local_path_yields_the_stored_file_itself(local: LocalStorage, root: Path) -> None:
    local.put_stream("t/1/a.mp4", io.BytesIO(b"x"))
    with local.local_path("t/1/a.mp4") as path:
        assert path == root / "t" / "1" / "a.mp4"


def test_a_relative_root_is_made_absolute_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    local = LocalStorage(Path("var/storage"))
    assert local.root == tmp_path / "var" / "storage"


def test_files_get_ordinary_permissions_from_the_umask(local: LocalStorage, root: Path) -> None:
    old = os.umask(0o022)
    try:
        local.put_stream("t/1/a", io.BytesIO(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "t" / "1" / "a").stat().st_mode) == 0o644


def test_a_failed_write_leaves_neither_the_object_nor_a_temporary_file(
    local: LocalStorage, root: Path
) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise OSError("network stream dropped")

    local.put_stream("t/1/a", io.BytesIO(b"old"))
    with pytest.raises(OSError, match="dropped"):
        local.put_stream("t/1/a", io.BufferedReader(Broken()))
    assert local.read_bytes("t/1/a") == b"old"
    assert os.listdir(root / "t" / "1") == ["a"]


def test_a_reader_never_sees_a_half_written_object(local: LocalStorage) -> None:
    """While a slow write is in progress, readers see the old object whole."""
    local.put_stream("t/1/a", io.BytesIO(b"old"))
    release = threading.Event()
    started = threading.Event()

    class Slow(io.RawIOBase):
        sent = False

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self.sent:
                started.set()
                release.wait(5)
                return 0
            self.sent = True
            buffer[:3] = b"new"
            return 3

    writer = threading.Thread(target=local.put_stream, args=("t/1/a", io.BufferedReader(Slow())))
    writer.start()
    assert started.wait(5)
    assert local.read_bytes("t/1/a") == b"old"
    assert list(local.list("t/1/")) == ["t/1/a"]  # the temporary file is not an object
    release.set()
    writer.join(5)
    assert local.read_bytes("t/1/a") == b"new"


def test_delete_prefix_removes_the_emptied_directories(local: LocalStorage, root: Path) -> None:
    local.put_stream("t/1/jobs/9/hls/720p/seg0.ts", io.BytesIO(b"x"))
    local.put_stream("t/1/files/3/data", io.BytesIO(b"x"))
    assert local.delete_prefix("t/1/jobs/") == 1
    assert not (root / "t" / "1" / "jobs").exists()
    assert (root / "t" / "1" / "files" / "3" / "data").exists()
    assert local.delete_prefix("t/1/files/") == 1
    assert not (root / "t").exists()
    assert root.is_dir()  # the root itself stays


def test_delete_removes_directories_it_empties_but_not_the_root(local: LocalStorage, root: Path) -> None:
    local.put_stream("t/1/files/2/data", io.BytesIO(b"x"))
    local.put_stream("t/1/other", io.BytesIO(b"x"))
    local.delete("t/1/files/2/data")
    assert not (root / "t" / "1" / "files").exists()
    assert (root / "t" / "1" / "other").exists()


def test_a_key_under_an_existing_object_is_refused_with_value_error(local: LocalStorage) -> None:
    local.put_stream("t/1/a", io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="clashes"):
        local.put_stream("t/1/a/b", io.BytesIO(b"x"))
    local.put_stream("t/2/a/b", io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="directory"):
        local.put_stream("t/2/a", io.BytesIO(b"x"))
    assert list(local.list("t/")) == ["t/1/a", "t/2/a/b"]


def test_put_file_of_a_missing_source_raises_file_not_found(local: LocalStorage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        local.put_file("t/1/a", tmp_path / "missing.bin")


def test_ping_creates_the_root_and_fails_when_it_cannot(tmp_path: Path) -> None:
    LocalStorage(tmp_path / "new" / "root").ping()
    assert (tmp_path / "new" / "root").is_dir()
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(TransientError):
        LocalStorage(tmp_path / "a-file" / "root").ping()
