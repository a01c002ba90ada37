"""`Storage` on an S3 bucket (AWS, or any S3-compatible server given by `endpoint_url`).

The boto3 client is built on first use and cached per process id: a `S3Storage` can be built with
the settings before workers fork, and each child makes its own client (boto3 clients hold sockets
and are not fork-safe). Every vendor error is translated at this edge:

- `ClientError` 404 / `NoSuchKey` on an object → `ObjectNotFound`;
- `ParamValidationError` (a bug in the caller) → re-raised unchanged;
- anything else from botocore/boto3 (other client errors, a missing bucket, refused connections,
  timeouts, failed transfers) → `faktry.errors.TransientError`, so callers retry.
"""

from __future__ import annotations

import builtins
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn, cast
from urllib.parse import quote

import boto3.session
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.exceptions import ValidationError as BotoValidationError

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

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MiB = 1 << 20
#: Objects at least this big go up and down in parts, several at a time.
MULTIPART_THRESHOLD = 8 * MiB
MULTIPART_CHUNKSIZE = 8 * MiB
#: S3 refuses presigned URLs valid for longer than 7 days (SigV4).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_MAX_S3_KEY_BYTES = 1024
_DELETE_BATCH = 1000  # the most keys `delete_objects` accepts in one call
_LIST_PAGE_SIZE = 1000  # the most keys `list_objects_v2` returns in one page
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
#: What S3 answers a completion whose parts are not all there, or not as listed.
_REFUSED_PARTS_CODES = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"})
#: S3's multipart limits: every part but the last at least this big, at most this many parts.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
# Looser than AWS's current rules so legacy names and other S3 servers' names still pass.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")


@dataclass(frozen=True)
class Part:
    """A part of a multipart upload, as S3 lists it."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class Upload:
    """A multipart upload under way: its key (without the storage's prefix), id and start."""

    key: str
    upload_id: str
    initiated: datetime


class PartsRefused(Exception):
    """S3 refused to assemble a multipart upload from the parts given (its error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"S3 refused the parts: {code}")
        self.code = code


class S3Storage:
    """Objects in `bucket`, each key stored as `<prefix>/<key>`.

    `endpoint_url` selects an S3-compatible server (MinIO, moto, ...): the client then uses
    path-style addressing and SigV4. Credentials left as None come from boto3's usual chain
    (environment, config files, instance role). `tmp_dir` receives the temporary copies made by
    `local_path` (default: the system temp dir). `client` replaces the lazily built one (tests).
    `max_attempts` is botocore's total attempts per request, first try included.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        tmp_dir: Path | None = None,
        client: Any = None,
        max_attempts: int = 3,
    ) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"invalid S3 bucket name: {bucket!r}")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = check_key(prefix) + "/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self.tmp_dir = tmp_dir
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._max_attempts = max_attempts
        self._given_client: S3Client | None = client
        self._cached: tuple[int, S3Client] | None = None
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNKSIZE,
            max_concurrency=4,
            use_threads=True,
            # The CRT client, when installed, raises its own errors and ignores most settings.
            preferred_transfer_client="classic",
        )
        # Caps what `put_stream` buffers for a non-seekable stream at 4 parts (32 MiB) instead of 10.
        self._transfer.max_in_memory_upload_chunks = 4

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}/{self.prefix}{where})"

    # -- client -----------------------------------------------------------------------------

    @property
    def client(self) -> S3Client:
        """This process's boto3 S3 client, built on first use after a fork."""
        if self._given_client is not None:
            return self._given_client
        pid = os.getpid()
        cached = self._cached
        if cached is None or cached[0] != pid:
            # Two threads racing here each build a client and one wins; both are usable.
            cached = (pid, self._build_client())
            self._cached = cached
        return cached[1]

    def _build_client(self) -> S3Client:
        options: dict[str, Any] = {
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"mode": "standard", "max_attempts": self._max_attempts},
            "max_pool_connections": 16,
        }
        if self.endpoint_url:
            options["signature_version"] = "s3v4"
            options["s3"] = {"addressing_style": "path"}
            # Many S3-compatible servers reject or mangle the CRC checksums botocore >= 1.36
            # sends by default; send them only where the API requires one.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        # A Session per client: boto3's default session is shared state and not thread-safe.
        session = boto3.session.Session(
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            region_name=self.region,
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=Config(**options))

    def _full(self, key: str) -> str:
        full = self.prefix + check_key(key)
        if len(full.encode()) > _MAX_S3_KEY_BYTES:
            raise ValueError("storage key is longer than S3 allows once prefixed and UTF-8 encoded")
        return full

    # -- writing ----------------------------------------------------------------------------

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        full = self._full(key)
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
        with _translated(key):
            self.client.upload_file(
                str(path), self.bucket, full, ExtraArgs=_extra(content_type), Config=self._transfer
            )

    def store_file(
        self, key: str, path: Path, *, content_type: str | None = None, move: bool = False
    ) -> Stored:
        full = self._full(key)
        with open(path, "rb") as f:
            # Not seekable, so s3transfer reads the file once, in order, and the hash follows
            # it (a seekable file would be read in parts by several threads).
            hashing = HashingReader(f)
            with _translated(key):
                self.client.upload_fileobj(
                    cast(IO[Any], hashing),
                    self.bucket,
                    full,
                    ExtraArgs=_extra(content_type),
                    Config=self._transfer,
                )
        if move:
            os.unlink(path)
        return hashing.stored()

    def put_stream(self, key: str, stream: BinaryIO, *, content_type: str | None = None) -> int:
        full = self._full(key)
        # Wrapped so s3transfer sees a non-seekable reader: it then reads each byte exactly once
        # (buffering parts itself), which is what makes the count right and any stream work.
        counter = _CountingReader(stream)
        with _translated(key):
            self.client.upload_fileobj(
                cast(IO[Any], counter),
                self.bucket,
                full,
                ExtraArgs=_extra(content_type),
                Config=self._transfer,
            )
        return counter.count

    # -- reading ----------------------------------------------------------------------------

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Chunks:
        full = self._full(key)
        with _translated(key):
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return Chunks(_TranslatedBody(body, key), chunk_size)

    def read_bytes(self, key: str) -> bytes:
        with self.iter_chunks(key, 1 << 20) as chunks:
            return b"".join(chunks)

    def download(self, key: str, dest: Path) -> None:
        full = self._full(key)
        # s3transfer writes to a temporary name beside `dest` and renames it into place.
        with _translated(key):
            self.client.download_file(self.bucket, full, str(dest), Config=self._transfer)

    @contextmanager
    def local_path(self, key: str, into: Path | None = None) -> Iterator[Path]:
        check_key(key)
        folder = into or self.tmp_dir
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="faktry-", suffix=_suffix(key), dir=folder)
        os.close(fd)
        path = Path(name)
        try:
            self.download(key, path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    # -- metadata ---------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any]:
        full = self._full(key)
        with _translated(key):
            return dict(self.client.head_object(Bucket=self.bucket, Key=full))

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list(self, prefix: str) -> Iterator[str]:
        full = self.prefix + check_prefix(prefix)
        return self._list(full)

    def _list(self, full_prefix: str) -> Iterator[str]:
        strip = len(self.prefix)
        with _translated(None):
            for page in self._pages(full_prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]

    def _pages(self, full_prefix: str) -> Iterator[Any]:
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": _LIST_PAGE_SIZE}
        )

    # -- deleting ---------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        full = self._full(key)
        with _translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def delete_prefix(self, prefix: str) -> int:
        full = self.prefix + check_prefix(prefix)
        removed = 0
        with _translated(None):
            # Deleting behind the paginator is safe: its continuation token is the last key seen.
            for page in self._pages(full):
                keys = [obj["Key"] for obj in page.get("Contents", [])]
                for start in range(0, len(keys), _DELETE_BATCH):
                    batch = keys[start : start + _DELETE_BATCH]
                    response = self.client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    )
                    errors = response.get("Errors", [])
                    if errors:
                        first = errors[0]
                        raise TransientError(
                            f"S3 refused to delete {len(errors)} of {len(batch)} objects "
                            f"(first: {first.get('Code')}: {first.get('Message')})"
                        )
                    removed += len(batch)
        return removed

    def move(self, src: str, dst: str, *, content_type: str | None = None) -> None:
        full_src, full_dst = self._full(src), self._full(dst)
        if full_src == full_dst:
            return
        extra: dict[str, Any] = {"MetadataDirective": "REPLACE", **(_extra(content_type) or {})}
        with _translated(src):
            # s3transfer's managed copy: one CopyObject, or UploadPartCopy in parts past the
            # multipart threshold (CopyObject stops at 5 GB).
            self.client.copy(
                {"Bucket": self.bucket, "Key": full_src}, self.bucket, full_dst, ExtraArgs=extra,
                Config=self._transfer,
            )  # fmt: skip
        self.delete(src)

    # -- multipart uploads ------------------------------------------------------------------
    #
    # The pieces of an object that arrives in parts (pipelines/uploads): S3's own multipart
    # upload, driven by faktry (a resumable upload's parts) or by the client through presigned
    # part URLs (a direct upload). Parts are numbered from 1; every part but the last must be
    # at least `MIN_PART_SIZE`; at most `MAX_PARTS` of them.

    def start_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Begin a multipart upload of `key`; returns its upload id."""
        full = self._full(key)
        with _translated(key):
            made = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, **(_extra(content_type) or {})
            )
        return str(made["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: BinaryIO, length: int) -> str:
        """Send part `number` (replacing an earlier part of that number) from `body`, which
        holds `length` bytes from its current position; returns the part's ETag."""
        full = self._full(key)
        with _translated(key):
            sent = self.client.upload_part(
                Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=cast(Any, body),
                ContentLength=length,
            )  # fmt: skip
        return str(sent["ETag"])

    def parts(self, key: str, upload_id: str) -> tuple[Part, ...]:
        """The parts received so far, by number; `ObjectNotFound` if the upload is unknown
        (completed, aborted, or never begun)."""
        full = self._full(key)
        found: builtins.list[Part] = []
        with _translated(key):
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=full, UploadId=upload_id):
                found += [
                    Part(int(p["PartNumber"]), int(p["Size"]), str(p["ETag"])) for p in page.get("Parts", [])
                ]
        return tuple(sorted(found, key=lambda p: p.number))

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """Assemble the object from `parts` (number, ETag), in that order. `PartsRefused` when
        S3 will not (a part missing or too small, a wrong ETag); the upload is left as it was."""
        full = self._full(key)
        body = {"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]}
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload=cast(Any, body)
            )
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _REFUSED_PARTS_CODES:
                raise PartsRefused(code) from e
            _raise_translated(e, key)
        except (BotoCoreError, Boto3Error) as e:
            _raise_translated(e, key)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts. An upload that is already gone is not an error."""
        full = self._full(key)
        try:
            with _translated(key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except ObjectNotFound:
            return

    def multipart_uploads(self, prefix: str) -> Iterator[Upload]:
        """The multipart uploads under way under `prefix` (which must end with `/`)."""
        full = self.prefix + check_prefix(prefix)
        strip = len(self.prefix)
        with _translated(None):
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Uploads", []):
                    yield Upload(str(item["Key"])[strip:], str(item["UploadId"]), item["Initiated"])

    def presigned_part_url(self, key: str, upload_id: str, number: int, *, expires_in: int) -> str:
        """A URL a client can PUT part `number` to, for `expires_in` seconds."""
        full = self._full(key)
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        params = {"Bucket": self.bucket, "Key": full, "UploadId": upload_id, "PartNumber": number}
        with _translated(key):
            return self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in)

    # -- the rest ---------------------------------------------------------------------------

    def presigned_url(
        self,
        key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        full = self._full(key)
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = content_type
        # Signing is local: no request is made, and a missing object is only found out by the GET.
        with _translated(key):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def ping(self) -> None:
        with _translated(None):
            self.client.head_bucket(Bucket=self.bucket)


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """A Content-Disposition value naming `filename`, safe for any characters in it (RFC 6266).

    Old clients read the ASCII `filename=` fallback; current browsers read `filename*`.
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename) or "download"
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _extra(content_type: str | None) -> dict[str, Any] | None:
    return {"ContentType": content_type} if content_type else None


def _suffix(key: str) -> str:
    """The key's extension if it is a plain one (`.ts`, `.mp4`): tools such as ffmpeg use it."""
    suffix = PurePosixPath(key).suffix
    return suffix if _SAFE_SUFFIX.fullmatch(suffix) else ""


def _raise_translated(error: Exception, key: str | None) -> NoReturn:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if key is not None and code in _NOT_FOUND_CODES:
            raise ObjectNotFound(key) from error
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise TransientError(
            f"S3 request failed: {code or 'unknown error'} (HTTP {status})",
            details={"backend_code": code},
        ) from error
    raise TransientError(f"S3 is unreachable or failed: {type(error).__name__}") from error


@contextmanager
def _translated(key: str | None) -> Iterator[None]:
    """Turn botocore/boto3 errors raised in the block into faktry errors (see module docstring).

    `key` is the object the block is about; None where a 404 means a missing bucket.
    """
    try:
        yield
    except (ParamValidationError, BotoValidationError):
        raise
    except (ClientError, BotoCoreError, Boto3Error) as e:
        _raise_translated(e, key)


class _CountingReader:
    """A read-only view of a stream that counts the bytes read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


class _TranslatedBody:
    """A `get_object` body whose read errors (a dropped connection mid-stream) become faktry errors."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def read(self, size: int = -1, /) -> bytes:
        with _translated(self._key):
            return bytes(self._body.read(size if size >= 0 else None))

    def close(self) -> None:
        self._body.close()
