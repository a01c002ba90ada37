"""`Storage` on a local directory: the development and single-host backend.

A key maps to the file `root/<key>`. Writes go to a temporary file in the destination directory
and are renamed into place (`os.replace` is atomic on POSIX), so readers never see partial files.

Temporary names contain a backslash, which `check_key` forbids in keys: a temporary file can never
collide with an object and `list` can skip them by that mark alone.

Limits of the filesystem that S3 does not have: a key cannot also be a directory of other keys
(`a/b` and `a/b/c` cannot both exist; storing the second raises `ValueError`), and each segment
must fit the filesystem's name limit (usually 255 bytes).

`delete_prefix` also removes in-flight temporary files under the prefix (and those left by a
crashed writer); a write racing it then fails with `FileNotFoundError`.

`store_file(..., move=True)` renames a plain file into place when it is on the root's
filesystem: it reads the file once for its SHA-256 (just written, it is still in the page
cache), flushes it to disk and renames it, so its bytes are never copied. Elsewhere it copies
the file, hashing while copying, and removes it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from faktry.errors import TransientError
from storage.interface import (
    CHUNK_SIZE,
    Chunks,
    HashingReader,
    ObjectNotFound,
    Stored,
    check_key,
    check_prefix,
)

_TEMP_MARK = "\\"
_COPY_CHUNK = 1 << 20
# How often a write retries when a concurrent delete prunes the directory it just created.
_MKDIR_ATTEMPTS = 5


class LocalStorage:
    """Objects as files under `root` (made absolute now, created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # -- paths ------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _file(self, key: str) -> Path:
        """The path of an existing object, or `ObjectNotFound`."""
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    # -- writing ----------------------------------------------------------------------------

    def _write_atomically(self, key: str, fill: Callable[[BinaryIO], int]) -> int:
        dest = self._path(key)
        for attempt in range(_MKDIR_ATTEMPTS):
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                # O_EXCL on a random name: never clobbers a concurrent writer's temp file. Mode
                # 0o666 lets the umask decide permissions, as for any ordinary file.
                tmp = dest.parent / f".tmp{_TEMP_MARK}{secrets.token_hex(8)}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileNotFoundError:
                # A concurrent delete removed the just-created (empty) directory; try again.
                if attempt == _MKDIR_ATTEMPTS - 1:
                    raise
            except (FileExistsError, NotADirectoryError) as e:
                raise ValueError(f"storage key {key!r} clashes with an existing object's path") from e
        try:
            with os.fdopen(fd, "wb") as out:
                written = fill(out)
                out.flush()
                # Without fsync a crash soon after the rename can leave an empty file under the
                # final name on some filesystems.
                os.fsync(out.fileno())
            if dest.is_dir():
                raise ValueError(f"storage key {key!r} is a directory of other objects")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return written

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        check_key(key)
        with open(path, "rb") as src:
            self._write_atomically(key, lambda out: _copy(src.read, out))

    def store_file(
        self, key: str, path: Path, *, content_type: str | None = None, move: bool = False
    ) -> Stored:
        check_key(key)
        if move:
            renamed = self._rename_into(key, Path(path))
            if renamed is not None:
                return renamed
        with open(path, "rb") as src:
            hashing = HashingReader(src)
            self._write_atomically(key, lambda out: _copy(hashing.read, out))
        if move:
            os.unlink(path)
        return hashing.stored()

    def _rename_into(self, key: str, src: Path) -> Stored | None:
        """Hash `src`, flush it to disk and rename it to `key`'s path; None when it is not a
        plain file of its own on the root's filesystem (the caller copies it instead)."""
        dest = self._path(key)
        if not stat.S_ISREG(os.lstat(src).st_mode):
            return None  # a symlink's target is copied, never moved into the store
        with open(src, "rb") as f:
            info = os.fstat(f.fileno())
            if info.st_nlink != 1:
                return None  # another name shares these bytes and could change them later
            self._make_parent(key, dest)
            if os.stat(dest.parent).st_dev != info.st_dev:
                return None
            digest = hashlib.file_digest(f, "sha256")
            size = f.tell()
            # As for copies: without it a crash soon after the rename can leave an empty file.
            os.fsync(f.fileno())
        for attempt in range(_MKDIR_ATTEMPTS):
            try:
                os.replace(src, dest)
                return Stored(size, digest.hexdigest())
            except FileNotFoundError:
                # A concurrent delete pruned the directory; `src` itself missing is the caller's.
                if attempt == _MKDIR_ATTEMPTS - 1 or not os.path.lexists(src):
                    raise
                self._make_parent(key, dest)
            except IsADirectoryError as e:
                raise ValueError(f"storage key {key!r} is a directory of other objects") from e
            except NotADirectoryError as e:
                raise ValueError(f"storage key {key!r} clashes with an existing object's path") from e
            except OSError as e:
                if e.errno == errno.EXDEV:  # one device number, two mounts (a bind mount)
                    return None
                raise
        raise AssertionError("unreachable")

    def _make_parent(self, key: str, dest: Path) -> None:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise ValueError(f"storage key {key!r} clashes with an existing object's path") from e

    def put_stream(self, key: str, stream: BinaryIO, *, content_type: str | None = None) -> int:
        check_key(key)
        return self._write_atomically(key, lambda out: _copy(stream.read, out))

    # -- reading ----------------------------------------------------------------------------

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Chunks:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - Chunks owns and closes it
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        return Chunks(f, chunk_size)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e

    def download(self, key: str, dest: Path) -> None:
        src = self._file(key)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except FileNotFoundError as e:
            tmp.unlink(missing_ok=True)
            if not dest.parent.is_dir():
                raise
            raise ObjectNotFound(key) from e  # deleted while copying
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def local_path(self, key: str, into: Path | None = None) -> Iterator[Path]:
        yield self._file(key)

    # -- metadata ---------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ObjectNotFound(key) from e
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(key)
        return st.st_size

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(check_prefix(prefix)[:-1])
        return iter(sorted(self._walk(base, prefix)))

    def _walk(self, base: Path, prefix: str) -> Iterator[str]:
        """Keys of the files under `base`, unordered."""
        if not base.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            head = prefix if rel == "." else prefix + rel.replace(os.sep, "/") + "/"
            for name in filenames:
                if _TEMP_MARK not in name:
                    yield head + name

    # -- deleting ---------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return  # `key` is only a prefix of other objects: no object to delete
        self._prune(path.parent)

    def move(self, src: str, dst: str, *, content_type: str | None = None) -> None:
        source, dest = self._file(src), self._path(dst)
        if src == dst:
            return
        self._make_parent(dst, dest)
        try:
            os.replace(source, dest)
        except FileNotFoundError as e:
            if not source.exists():
                raise ObjectNotFound(src) from e
            raise
        except IsADirectoryError as e:
            raise ValueError(f"storage key {dst!r} is a directory of other objects") from e
        self._prune(source.parent)

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(check_prefix(prefix)[:-1])
        if not base.is_dir():
            return 0
        removed = 0
        for dirpath, dirnames, filenames in os.walk(base, topdown=False):
            for name in filenames:
                try:
                    os.unlink(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if _TEMP_MARK not in name:
                    removed += 1
            for name in dirnames:
                _rmdir_if_empty(os.path.join(dirpath, name))
        _rmdir_if_empty(str(base))
        self._prune(base.parent)
        return removed

    def _prune(self, directory: Path) -> None:
        """Remove `directory` and its parents up to (not including) the root while empty."""
        while directory != self.root and self.root in directory.parents:
            if not _rmdir_if_empty(str(directory)):
                return
            directory = directory.parent

    # -- the rest ---------------------------------------------------------------------------

    def presigned_url(
        self,
        key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        check_key(key)
        return None

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TransientError(f"local storage root is unusable: {e}") from e
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise TransientError("local storage root is not writable")


def _copy(read: Callable[[int], bytes], out: BinaryIO) -> int:
    written = 0
    while chunk := read(_COPY_CHUNK):
        out.write(chunk)
        written += len(chunk)
    return written


def _rmdir_if_empty(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True
