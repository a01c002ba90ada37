"""S3-only behaviour: multipart, prefixes, client lifecycle, and error translation."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import storage.s3 as storage_s3
from faktry.errors import TransientError
from storage import ObjectNotFound, S3Storage
from storage.s3 import content_disposition
from tests.storage.support import CREDENTIALS, free_port


def make(endpoint: str, bucket: str, **kw: Any) -> S3Storage:
    return S3Storage(
        bucket,
        endpoint_url=endpoint,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
        **kw,
    )


def test_put_file_uploads_a_12_mib_file_in_parts(
    s3_storage: S3Storage, s3_admin: Any, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * 1024 * 1024))
    s3_storage.put_file("t/1/big.bin", src, content_type="video/mp4")
    head = s3_admin.head_object(Bucket=s3_storage.bucket, Key="t/1/big.bin")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart ETag names its part count
    assert head["ContentType"] == "video/mp4"


def test_put_stream_records_the_content_type(s3_storage: S3Storage, s3_admin: Any) -> None:
    s3_storage.put_stream("t/1/index.m3u8", io.BytesIO(b"#EXTM3U\n"), content_type="application/x-mpegURL")
    head = s3_admin.head_object(Bucket=s3_storage.bucket, Key="t/1/index.m3u8")
    assert head["ContentType"] == "application/x-mpegURL"


def test_put_stream_counts_a_multipart_stream_exactly(s3_storage: S3Storage) -> None:
    data = os.urandom(9 * 1024 * 1024)  # above the threshold: sent in two parts
    assert s3_storage.put_stream("t/1/big", io.BytesIO(data)) == len(data)
    assert s3_storage.read_bytes("t/1/big") == data


def test_a_prefixed_storage_keeps_its_objects_under_the_prefix(
    s3_endpoint: str, s3_bucket: str, s3_admin: Any
) -> None:
    inner = make(s3_endpoint, s3_bucket, prefix="/env/prod/")
    s3_admin.put_object(Bucket=s3_bucket, Key="env/prodx/t/1/a", Body=b"neighbour")
    inner.put_stream("t/1/a", io.BytesIO(b"x"))
    assert s3_admin.get_object(Bucket=s3_bucket, Key="env/prod/t/1/a")["Body"].read() == b"x"
    assert list(inner.list("t/")) == ["t/1/a"]
    assert inner.delete_prefix("t/") == 1
    assert s3_admin.get_object(Bucket=s3_bucket, Key="env/prodx/t/1/a")["Body"].read() == b"neighbour"


@pytest.mark.slow
def test_delete_prefix_removes_more_than_a_thousand_objects(s3_storage: S3Storage, s3_admin: Any) -> None:
    count = 1005  # more than one list page and one delete_objects batch
    for i in range(count):
        s3_admin.put_object(Bucket=s3_storage.bucket, Key=f"t/1/frames/{i:05d}.png", Body=b"")
    assert len(list(s3_storage.list("t/1/"))) == count
    assert s3_storage.delete_prefix("t/1/") == count
    assert list(s3_storage.list("t/")) == []


def test_local_path_downloads_into_tmp_dir_and_keeps_the_extension(
    s3_storage: S3Storage, tmp_path: Path
) -> None:
    s3_storage.put_stream("t/1/jobs/2/out.mp4", io.BytesIO(b"x"))
    with s3_storage.local_path("t/1/jobs/2/out.mp4") as path:
        assert path.parent == tmp_path / "s3-tmp"
        assert path.suffix == ".mp4"
    assert list((tmp_path / "s3-tmp").iterdir()) == []


def test_the_client_is_built_on_first_use_and_again_in_a_forked_child(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert s3_storage._cached is None  # constructing opens nothing
    s3_storage.ping()
    first = s3_storage.client
    assert s3_storage.client is first
    monkeypatch.setattr(storage_s3.os, "getpid", lambda: -1)  # as if in a child after fork
    assert s3_storage.client is not first
    s3_storage.ping()


def test_a_given_client_is_used_as_is(s3_storage: S3Storage, s3_endpoint: str) -> None:
    given = make(s3_endpoint, s3_storage.bucket, client=s3_storage.client)
    assert given.client is s3_storage.client


def test_an_unreachable_endpoint_raises_transient_error(tmp_path: Path) -> None:
    dead = make(f"http://127.0.0.1:{free_port()}", "no-server-here")  # default retries
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    calls = [
        dead.ping,
        lambda: dead.put_file("t/1/a", src),
        lambda: dead.put_stream("t/1/a", io.BytesIO(b"x")),
        lambda: dead.read_bytes("t/1/a"),
        lambda: dead.iter_chunks("t/1/a"),
        lambda: dead.download("t/1/a", tmp_path / "out"),
        lambda: dead.exists("t/1/a"),
        lambda: dead.size("t/1/a"),
        lambda: dead.delete("t/1/a"),
        lambda: dead.delete_prefix("t/1/"),
        lambda: list(dead.list("t/1/")),
    ]
    for call in calls:
        with pytest.raises(TransientError) as caught:
            call()
        assert caught.value.transient


def test_a_missing_bucket_is_a_transient_error_not_a_missing_object(s3_endpoint: str) -> None:
    nowhere = make(s3_endpoint, "bucket-that-does-not-exist", max_attempts=1)
    with pytest.raises(TransientError) as caught:
        nowhere.read_bytes("t/1/a")
    assert not isinstance(caught.value, ObjectNotFound)
    assert caught.value.details == {"backend_code": "NoSuchBucket"}
    with pytest.raises(TransientError):
        nowhere.ping()


def test_presigned_url_rejects_lifetimes_s3_cannot_sign(s3_storage: S3Storage) -> None:
    for expires_in in (0, -1, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError):
            s3_storage.presigned_url("t/1/a", expires_in=expires_in)


def test_content_disposition_has_an_ascii_fallback_and_an_exact_utf8_name() -> None:
    value = content_disposition('my "clip"\\ é.mp4')
    assert (
        value == "attachment; filename=\"my _clip__ _.mp4\"; filename*=UTF-8''my%20%22clip%22%5C%20%C3%A9.mp4"
    )


def test_bad_bucket_names_and_prefixes_are_rejected_at_construction() -> None:
    for bucket in ("", "a/b", "x", "user@bucket"):
        with pytest.raises(ValueError):
            S3Storage(bucket)
    with pytest.raises(ValueError):
        S3Storage("bucket", prefix="a/../b")


def test_a_key_too_long_for_s3_once_prefixed_and_encoded_is_refused(s3_storage: S3Storage) -> None:
    key = "t/" + "é" * 600  # 602 characters, 1202 UTF-8 bytes
    with pytest.raises(ValueError, match="longer than S3 allows"):
        s3_storage.put_stream(key, io.BytesIO(b"x"))
