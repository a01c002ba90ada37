"""`storage.from_url`: which backend a storage URL builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import LocalStorage, S3Storage, from_url


def test_an_absolute_file_url_builds_local_storage_at_that_path(tmp_path: Path) -> None:
    built = from_url(f"file://{tmp_path}/store", tmp_dir=tmp_path)
    assert isinstance(built, LocalStorage)
    assert built.root == tmp_path / "store"


def test_a_relative_file_url_is_resolved_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    built = from_url("file:var/storage", tmp_dir=tmp_path)
    assert isinstance(built, LocalStorage)
    assert built.root == tmp_path / "var" / "storage"


def test_an_s3_url_builds_s3_storage_with_bucket_prefix_and_settings(tmp_path: Path) -> None:
    built = from_url(
        "s3://media-bucket/env/prod/",
        tmp_dir=tmp_path,
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_region="eu-west-1",
        s3_access_key_id="id",
        s3_secret_access_key="secret",
    )
    assert isinstance(built, S3Storage)
    assert (built.bucket, built.prefix) == ("media-bucket", "env/prod/")
    assert (built.endpoint_url, built.region, built.tmp_dir) == (
        "http://127.0.0.1:9000",
        "eu-west-1",
        tmp_path,
    )
    assert built._cached is None  # no client, no connection yet


def test_an_s3_url_without_a_prefix_uses_the_bucket_root(tmp_path: Path) -> None:
    built = from_url("s3://media-bucket", tmp_dir=tmp_path)
    assert isinstance(built, S3Storage)
    assert built.prefix == ""
    assert built.endpoint_url is None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "var/storage",
        "/abs/path",
        "file:",
        "file://somehost/path",
        "file:///tmp/x?mode=1",
        "s3://",
        "s3:///prefix",
        "s3://bucket/a/../b",
        "gs://bucket/prefix",
        "http://example.com/bucket",
    ],
)
def test_other_urls_are_refused_with_value_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        from_url(url, tmp_dir=tmp_path)
