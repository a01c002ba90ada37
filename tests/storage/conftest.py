"""Fixtures for the storage suite: one moto S3 server per session, a fresh bucket per test.

`storage` is parametrized over every backend, so each test in `test_conformance.py` runs once
against the local directory and once against S3 (moto over loopback, through the real boto3).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from storage import LocalStorage, S3Storage, Storage
from tests.storage.support import CREDENTIALS, free_port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of an in-process moto S3 server on loopback, up for the whole session."""
    from moto.server import ThreadedMotoServer

    # Werkzeug logs every request at INFO; keep the output readable.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, for setting up and inspecting buckets."""
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        region_name="us-east-1",
    )
    return session.client("s3", endpoint_url=s3_endpoint, config=Config(s3={"addressing_style": "path"}))


@pytest.fixture
def s3_bucket(s3_endpoint: str, s3_admin: Any) -> Iterator[str]:
    """A new, empty bucket; moto's state is wiped afterwards so big test objects do not pile up."""
    name = f"faktry-test-{uuid.uuid4().hex}"
    s3_admin.create_bucket(Bucket=name)
    yield name
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture
def s3_storage(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> S3Storage:
    return S3Storage(
        s3_bucket,
        endpoint_url=s3_endpoint,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
        tmp_dir=tmp_path / "s3-tmp",
    )


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage-root")


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest) -> Storage:
    """Each backend in turn; tests that need backend-specific checks also take `backend`."""
    fixture = {"local": "local_storage", "s3": "s3_storage"}[backend]
    result: Storage = request.getfixturevalue(fixture)
    return result
