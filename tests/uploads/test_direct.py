"""Direct uploads to S3 (``POST /v1/uploads``): the client PUTs its parts to presigned URLs
on the S3 server itself (moto over loopback, real HTTP), so the bytes never pass through
faktry, then asks faktry to complete the upload. On local storage the same call answers a
tus upload instead."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import update
from tusclient import client as tus

from faktry import clock
from faktry.db import new_id, transaction
from pipelines.uploads import service
from pipelines.uploads import sweep as sweep_module
from pipelines.uploads.models import Upload
from pipelines.uploads.sweep import sweep
from quotas.limits import tier_limits
from storage import S3Storage, from_settings
from tests.uploads.conftest import MiB, noise_png, sha256
from tests.uploads.test_tus import library_bytes, stored_under, upload_row, usage

on_s3 = pytest.mark.parametrize("backend", ["s3"], indirect=True)


@pytest.fixture
def three_parts(tmp_path: Path) -> Path:
    """About 17 MiB: two 8 MiB parts and a short third."""
    return noise_png(tmp_path / "three.png", 17 * MiB)


def start(served: Any, tenant: Any, path: Path) -> dict[str, Any]:
    made = requests.post(
        f"{served.url}/v1/uploads",
        json={"filename": path.name, "size": path.stat().st_size, "content_type": "image/png"},
        headers=tenant.headers,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def put(upload: dict[str, Any], data: bytes, number: int, extra: int = 0) -> str:
    part = upload["parts"][number - 1]
    first = (number - 1) * upload["part_size"]
    sent = requests.put(part["url"], data=data[first : first + part["size"] + extra], timeout=30)
    assert sent.status_code == 200, sent.text
    return str(sent.headers["ETag"])


def complete(served: Any, tenant: Any, upload: dict[str, Any], body: Any = None) -> requests.Response:
    return requests.post(
        f"{served.url}{upload['complete_url']}", json=body, headers=tenant.headers, timeout=60
    )


def multipart_uploads(settings: Any) -> list[Any]:
    storage = from_settings(settings)
    assert isinstance(storage, S3Storage)
    return list(storage.multipart_uploads("t/"))


@on_s3
def test_parts_put_to_presigned_urls_complete_as_the_same_bytes_in_the_library(
    served, tenant, three_parts, settings
):
    data = three_parts.read_bytes()
    before = usage(settings, tenant.id)
    upload = start(served, tenant, three_parts)
    assert upload["protocol"] == "s3_multipart" and upload["status"] == "pending"
    assert upload["part_size"] == 8 * MiB and [p["number"] for p in upload["parts"]] == [1, 2, 3]
    assert sum(p["size"] for p in upload["parts"]) == len(data)
    assert usage(settings, tenant.id) == (before[0], before[1] + len(data))  # reserved at once
    etags = [put(upload, data, n) for n in (1, 2, 3)]
    done = complete(
        served,
        tenant,
        upload,
        {"parts": [{"number": n, "etag": e} for n, e in zip((1, 2, 3), etags, strict=True)]},
    )
    assert done.status_code == 201, done.text
    file = done.json()
    assert file["object"] == "file" and file["origin"] == "upload" and file["filename"] == "three.png"
    assert file["sha256"] == sha256(three_parts)
    assert hashlib.sha256(library_bytes(served, tenant, file["id"])).hexdigest() == sha256(three_parts)
    assert usage(settings, tenant.id) == (before[0] + len(data), before[1])
    # Completing again answers the same file; nothing is counted twice.
    again = complete(served, tenant, upload)
    assert again.status_code == 200 and again.json()["id"] == file["id"]
    assert usage(settings, tenant.id) == (before[0] + len(data), before[1])
    got = requests.get(f"{served.url}/v1/uploads/{upload['id']}", headers=tenant.headers, timeout=10).json()
    assert got["status"] == "completed" and got["file_id"] == file["id"]
    assert stored_under(settings, tenant.id, upload["id"]) == [] and multipart_uploads(settings) == []


@on_s3
def test_completing_before_every_part_arrived_is_refused_and_loses_nothing(
    served, tenant, three_parts, settings
):
    data = three_parts.read_bytes()
    upload = start(served, tenant, three_parts)
    put(upload, data, 1)
    put(upload, data, 3)
    early = complete(served, tenant, upload)
    assert early.status_code == 409 and early.json()["error"]["code"] == "upload_incomplete"
    assert upload_row(settings, upload["id"]).status == "pending"
    put(upload, data, 2)  # the missing part, then the same call again
    done = complete(served, tenant, upload)
    assert done.status_code == 201, done.text
    assert hashlib.sha256(library_bytes(served, tenant, done.json()["id"])).hexdigest() == sha256(three_parts)


@on_s3
def test_parts_holding_more_than_the_declared_size_fail_the_upload(served, tenant, three_parts, settings):
    data = three_parts.read_bytes() + b"\0" * MiB
    before = usage(settings, tenant.id)
    upload = start(served, tenant, three_parts)
    for number in (1, 2):
        put(upload, data, number)
    put(upload, data, 3, extra=MiB)
    refused = complete(served, tenant, upload)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "size_mismatch"
    assert upload_row(settings, upload["id"]).status == "failed"
    assert usage(settings, tenant.id) == before and multipart_uploads(settings) == []


@on_s3
def test_an_abandoned_direct_upload_is_expired_by_the_sweep_its_parts_aborted(
    served, tenant, three_parts, settings, app
):
    data = three_parts.read_bytes()
    before = usage(settings, tenant.id)
    upload = start(served, tenant, three_parts)
    put(upload, data, 1)
    assert len(multipart_uploads(settings)) == 1
    clock.advance(timedelta(hours=settings.upload_expiry_hours, minutes=1))
    late = complete(served, tenant, upload)
    assert late.status_code == 410 and late.json()["error"]["code"] == "upload_expired"
    swept = sweep(
        app.extensions["faktry"].sessions, from_settings(settings), service.Policy.from_settings(settings)
    )
    assert swept.expired == 1
    assert multipart_uploads(settings) == []
    assert usage(settings, tenant.id) == before
    assert upload_row(settings, upload["id"]).status == "expired"


@on_s3
def test_a_multipart_upload_that_no_upload_knows_is_aborted_by_the_sweep(tenant, settings, app):
    storage = from_settings(settings)
    assert isinstance(storage, S3Storage)
    sessions = app.extensions["faktry"].sessions
    policy = service.Policy.from_settings(settings)
    # What a crash between starting the multipart upload and recording its id leaves...
    made = service.create(
        sessions, storage, policy, tenant_id=tenant.id, limits=tier_limits_of(app), protocol="s3_multipart",
        filename="a.png", size=MiB,
    )  # fmt: skip
    with transaction(sessions) as session:
        session.execute(update(Upload).where(Upload.id == made.id).values(s3_upload_id=None))
    # ...and what is left of an upload whose row went with its account.
    storage.start_multipart(service.prefix(tenant.id, new_id("upl")) + "data")
    assert len(multipart_uploads(settings)) == 2
    assert sweep(sessions, storage, policy).orphans_aborted == 1  # the first is perhaps being started
    later = clock.now() + sweep_module.ORPHAN_GRACE + timedelta(minutes=1)
    assert sweep(sessions, storage, policy, now=later).orphans_aborted == 1
    assert multipart_uploads(settings) == []


@on_s3
def test_deleting_a_direct_upload_aborts_its_parts_and_gives_the_storage_back(
    served, tenant, three_parts, settings
):
    data = three_parts.read_bytes()
    before = usage(settings, tenant.id)
    upload = start(served, tenant, three_parts)
    put(upload, data, 1)
    gone = requests.delete(f"{served.url}/v1/uploads/{upload['id']}", headers=tenant.headers, timeout=10)
    assert gone.status_code == 204
    assert multipart_uploads(settings) == [] and usage(settings, tenant.id) == before
    got = requests.get(f"{served.url}/v1/uploads/{upload['id']}", headers=tenant.headers, timeout=10).json()
    assert got["status"] == "cancelled"
    assert complete(served, tenant, upload).status_code == 410


@on_s3
def test_another_tenants_direct_upload_is_answered_404_like_an_unknown_one(served, make_tenant, three_parts):
    mine, theirs = make_tenant(), make_tenant()
    upload = start(served, theirs, three_parts)
    for some in (upload["id"], "upl_" + "0" * 24):
        for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/complete")):
            answer = requests.request(
                method, f"{served.url}/v1/uploads/{some}{path}", headers=mine.headers, timeout=10
            )
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "upload_not_found", (
                method,
                path,
            )
    assert upload_row_status(served, theirs, upload["id"]) == "pending"


def tier_limits_of(app: Any) -> Any:
    with transaction(app.extensions["faktry"].sessions) as session:
        return tier_limits(session, "free")


def upload_row_status(served: Any, tenant: Any, upload_id: str) -> str:
    answer = requests.get(f"{served.url}/v1/uploads/{upload_id}", headers=tenant.headers, timeout=10)
    return str(answer.json()["status"])


def test_on_local_storage_the_same_call_answers_a_tus_upload(served, tenant, clip_small):
    upload = start(served, tenant, clip_small)
    assert upload["protocol"] == "tus" and "parts" not in upload
    assert upload["tus_url"] == f"/v1/uploads/tus/{upload['id']}"
    uploader = tus.TusClient(f"{served.url}/v1/uploads/tus", headers=dict(tenant.headers)).uploader(
        str(clip_small), url=served.url + upload["tus_url"]
    )
    uploader.upload()
    file_id = uploader.request.response_headers["faktry-file-id"]
    done = requests.post(
        f"{served.url}/v1/uploads/{upload['id']}/complete", headers=tenant.headers, timeout=10
    )
    assert done.status_code == 200 and done.json()["id"] == file_id  # complete already: the same file
    assert done.json()["kind"] == "video" and done.json()["sha256"] == sha256(clip_small)
