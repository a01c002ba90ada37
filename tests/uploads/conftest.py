"""Fixtures for the upload suites: the app served over loopback (tus clients speak real HTTP
to it), on local storage or on S3 (moto over loopback, a bucket per test), and media to send."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from faktry.config import Settings
from tests.conftest import make_settings
from tests.standins.server import ServedApp, serve

MiB = 1 << 20


@pytest.fixture(params=["local"])
def backend(request: pytest.FixtureRequest) -> str:
    """Local storage unless a test asks for more (``indirect`` parametrization)."""
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str, backend: str, request: Any) -> Settings:
    base = make_settings(tmp_path, db_url, redis_namespace, upload_lock_seconds=30.0)
    if backend == "local":
        return base
    endpoint = request.getfixturevalue("s3_server")
    bucket = f"faktry-uploads-{uuid.uuid4().hex[:12]}"
    s3_admin(endpoint).create_bucket(Bucket=bucket)
    return base.replace(
        storage_url=f"s3://{bucket}/media",
        s3_endpoint_url=endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )


def s3_admin(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint)


@pytest.fixture
def served(app: Any) -> Iterator[ServedApp]:
    """The test's app on a free loopback port, in this process (the clock moves with the test's)."""
    server = serve(app, "faktry-web")
    yield server
    server.stop()


def noise_png(path: Path, size: int) -> Path:
    """A PNG of random pixels, stored uncompressed: about ``size`` bytes that no chunk of
    repeats another, so a misplaced byte changes the SHA-256."""
    side = int((size / 3) ** 0.5)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, compress_level=0)
    return path


@pytest.fixture
def big_png(tmp_path: Path) -> Path:
    """About 12 MiB: two whole S3 parts of 5 MiB and a short last one."""
    return noise_png(tmp_path / "big.png", 12 * MiB)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
