"""Resumable uploads over tus 1.0 (web/api/uploads.py, pipelines/uploads): tuspy, the
protocol's Python client, against the app served over loopback, on local storage and on S3
(moto), on SQLite and on PostgreSQL. A file sent whole, and one whose connection is cut
mid-way and resumed by a new client from the offset HEAD reports, end in the library
byte for byte; what goes wrong is answered with the protocol's codes and leaves no bytes
and no reserved storage behind."""

from __future__ import annotations

import base64
import hashlib
import socket
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines.uploads import service
from pipelines.uploads.models import Upload
from pipelines.uploads.sweep import sweep
from quotas.models import Account, StorageReservation
from storage import from_settings
from tests.uploads.conftest import MiB, sha256

TUS = {"Tus-Resumable": "1.0.0"}
both_backends = pytest.mark.parametrize("backend", ["local", "s3"], indirect=True)


def tus_client(served: Any, tenant: Any) -> tus.TusClient:
    return tus.TusClient(f"{served.url}/v1/uploads/tus", headers=dict(tenant.headers))


def usage(settings: Any, tenant_id: str) -> tuple[int, int]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            account = s.get(Account, tenant_id)
            assert account is not None
            return account.storage_used_bytes, account.storage_reserved_bytes
    finally:
        engine.dispose()


def upload_row(settings: Any, upload_id: str) -> Upload:
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            row = s.get(Upload, upload_id)
            assert row is not None
            s.expunge(row)
            return row
    finally:
        engine.dispose()


def stored_under(settings: Any, tenant_id: str, upload_id: str) -> list[str]:
    return list(from_settings(settings).list(service.prefix(tenant_id, upload_id)))


def library_bytes(served: Any, tenant: Any, file_id: str) -> bytes:
    answer = requests.get(f"{served.url}/v1/files/{file_id}/content", headers=tenant.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


def create(served: Any, tenant: Any, size: int, name: str = "clip.mp4") -> str:
    encoded = base64.b64encode(name.encode()).decode()
    made = requests.post(
        f"{served.url}/v1/uploads/tus",
        headers={
            **tenant.headers,
            **TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": f"filename {encoded}",
        },
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return str(made.headers["Location"].rsplit("/", 1)[-1])


def head(served: Any, tenant: Any, upload_id: str) -> requests.Response:
    return requests.head(
        f"{served.url}/v1/uploads/tus/{upload_id}", headers={**tenant.headers, **TUS}, timeout=10
    )


def patch(
    served: Any, tenant: Any, upload_id: str, offset: int, data: bytes, **headers: str
) -> requests.Response:
    return requests.patch(
        f"{served.url}/v1/uploads/tus/{upload_id}",
        data=data,
        headers={
            **tenant.headers, **TUS, "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream", **headers,
        },
        timeout=30,
    )  # fmt: skip


def cut_off(served: Any, tenant: Any, upload_id: str, data: bytes, sent: int) -> None:
    """A PATCH that promises all of ``data`` and whose connection dies after ``sent`` bytes."""
    where = urlsplit(served.url)
    head_lines = [
        f"PATCH /v1/uploads/tus/{upload_id} HTTP/1.1",
        f"Host: {where.netloc}",
        f"Authorization: {tenant.headers['Authorization']}",
        "Tus-Resumable: 1.0.0",
        "Upload-Offset: 0",
        "Content-Type: application/offset+octet-stream",
        f"Content-Length: {len(data)}",
    ]
    with socket.create_connection((where.hostname, where.port)) as sock:
        sock.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode() + data[:sent])
        sock.shutdown(socket.SHUT_WR)  # the client goes away mid-body
        sock.settimeout(30)
        while sock.recv(65536):  # the server answers (or closes) once it has kept what came
            pass


# -- whole, and resumed ------------------------------------------------------------------------


@both_backends
def test_a_file_sent_whole_by_tuspy_becomes_the_same_bytes_in_the_library(served, tenant, big_png, settings):
    before = usage(settings, tenant.id)
    # Chunks of 3 MiB: on S3 every other PATCH ends inside a 5 MiB part, whose start waits in a tail.
    uploader = tus_client(served, tenant).uploader(
        str(big_png), chunk_size=3 * MiB, metadata={"filename": "big.png", "filetype": "image/png"}
    )
    uploader.upload()
    file_id = uploader.request.response_headers["faktry-file-id"]
    upload_id = uploader.url.rsplit("/", 1)[-1]
    got = requests.get(f"{served.url}/v1/uploads/{upload_id}", headers=tenant.headers, timeout=10).json()
    assert got["status"] == "completed" and got["file_id"] == file_id and got["offset"] == got["size"]
    meta = requests.get(f"{served.url}/v1/files/{file_id}", headers=tenant.headers, timeout=10).json()
    assert meta["origin"] == "upload" and meta["filename"] == "big.png" and meta["kind"] == "image"
    assert (
        meta["sha256"]
        == sha256(big_png)
        == hashlib.sha256(library_bytes(served, tenant, file_id)).hexdigest()
    )
    size = big_png.stat().st_size
    assert usage(settings, tenant.id) == (before[0] + size, before[1])  # reserved became used
    assert stored_under(settings, tenant.id, upload_id) == []  # nothing staged is left


@both_backends
def test_an_upload_cut_off_mid_way_resumes_from_the_head_offset_with_a_new_client(
    served, tenant, big_png, settings
):
    data = big_png.read_bytes()
    upload_id = create(served, tenant, len(data), "big.png")
    sent = 7 * MiB + 12345  # past the first S3 part: its tail is kept on its own
    cut_off(served, tenant, upload_id, data, sent)
    offset = int(head(served, tenant, upload_id).headers["Upload-Offset"])
    assert offset == sent  # every byte that arrived was kept, durably, and no more
    # A new client, knowing only the URL, carries on from the server's offset.
    url = f"{served.url}/v1/uploads/tus/{upload_id}"
    resumed = tus.TusClient(f"{served.url}/v1/uploads/tus", headers=dict(tenant.headers)).uploader(
        str(big_png), url=url, chunk_size=4 * MiB
    )
    assert resumed.offset == sent
    resumed.upload()
    file_id = resumed.request.response_headers["faktry-file-id"]
    assert hashlib.sha256(library_bytes(served, tenant, file_id)).hexdigest() == sha256(big_png)


def test_a_patch_at_another_offset_is_refused_and_the_upload_stays_where_it_was(served, tenant, clip_small):
    data = clip_small.read_bytes()
    upload_id = create(served, tenant, len(data))
    assert patch(served, tenant, upload_id, 0, data[:100]).headers["Upload-Offset"] == "100"
    wrong = patch(served, tenant, upload_id, 50, data[50:150])
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "offset_mismatch"
    assert head(served, tenant, upload_id).headers["Upload-Offset"] == "100"
    done = patch(served, tenant, upload_id, 100, data[100:])
    assert done.status_code == 204 and done.headers["Faktry-File-Id"].startswith("fil_")


# -- the protocol's answers --------------------------------------------------------------------


def test_options_tells_the_servers_capabilities_without_credentials(served):
    answer = requests.options(f"{served.url}/v1/uploads/tus", timeout=10)
    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert answer.headers["Tus-Extension"] == "creation,expiration,termination,checksum"
    assert answer.headers["Tus-Checksum-Algorithm"] == "sha1,md5,sha256"
    assert int(answer.headers["Tus-Max-Size"]) > 0


def test_a_request_without_tus_resumable_is_answered_412(served, tenant):
    answer = requests.post(
        f"{served.url}/v1/uploads/tus", headers={**tenant.headers, "Upload-Length": "10"}, timeout=10
    )
    assert answer.status_code == 412 and answer.headers["Tus-Version"] == "1.0.0"


def test_a_body_that_does_not_match_its_checksum_is_answered_460_and_not_counted(served, tenant, clip_small):
    data = clip_small.read_bytes()
    upload_id = create(served, tenant, len(data))
    wrong = base64.b64encode(hashlib.sha1(b"something else").digest()).decode()
    refused = patch(served, tenant, upload_id, 0, data[:1000], **{"Upload-Checksum": f"sha1 {wrong}"})
    assert refused.status_code == 460 and refused.json()["error"]["code"] == "checksum_mismatch"
    assert head(served, tenant, upload_id).headers["Upload-Offset"] == "0"
    # tuspy's own checksums pass, and the upload completes.
    uploader = tus_client(served, tenant).uploader(
        str(clip_small),
        url=f"{served.url}/v1/uploads/tus/{upload_id}",
        upload_checksum=True,
        chunk_size=40_000,
    )
    uploader.upload()
    assert uploader.request.response_headers["faktry-file-id"].startswith("fil_")


def test_termination_removes_the_bytes_and_gives_the_storage_back(served, tenant, clip_small, settings):
    data = clip_small.read_bytes()
    before = usage(settings, tenant.id)
    upload_id = create(served, tenant, len(data))
    assert usage(settings, tenant.id) == (before[0], before[1] + len(data))  # reserved at creation
    patch(served, tenant, upload_id, 0, data[:500])
    gone = requests.delete(
        f"{served.url}/v1/uploads/tus/{upload_id}", headers={**tenant.headers, **TUS}, timeout=10
    )
    assert gone.status_code == 204
    assert head(served, tenant, upload_id).status_code == 410
    assert patch(served, tenant, upload_id, 500, data[500:]).status_code == 410
    assert usage(settings, tenant.id) == before
    assert stored_under(settings, tenant.id, upload_id) == []
    assert upload_row(settings, upload_id).status == "cancelled"


@both_backends
def test_an_expired_upload_is_answered_410_and_the_sweep_removes_its_bytes_and_reservation(
    served, tenant, big_png, settings, app
):
    data = big_png.read_bytes()
    before = usage(settings, tenant.id)
    upload_id = create(served, tenant, len(data), "big.png")
    assert patch(served, tenant, upload_id, 0, data[: 6 * MiB]).status_code == 204  # a part and a tail
    assert stored_under(settings, tenant.id, upload_id) != []
    clock.advance(timedelta(hours=settings.upload_expiry_hours, minutes=1))
    late = patch(served, tenant, upload_id, 6 * MiB, data[6 * MiB :])
    assert late.status_code == 410 and late.json()["error"]["code"] == "upload_expired"
    swept = sweep(
        app.extensions["faktry"].sessions, from_settings(settings), service.Policy.from_settings(settings)
    )
    assert swept.expired == 1
    assert usage(settings, tenant.id) == before
    assert stored_under(settings, tenant.id, upload_id) == []
    assert upload_row(settings, upload_id).status == "expired"
    if settings.storage_url.startswith("s3://"):
        storage = from_settings(settings)
        assert list(storage.multipart_uploads("t/")) == []  # type: ignore[attr-defined]


def test_an_upload_over_the_quota_or_the_size_limit_is_refused_at_creation(served, make_tenant, make_tier):
    small = make_tenant(make_tier(storage_quota_bytes=1000, max_upload_bytes=10_000))

    def create_of(size: int) -> requests.Response:
        return requests.post(
            f"{served.url}/v1/uploads/tus",
            headers={**small.headers, **TUS, "Upload-Length": str(size)},
            timeout=10,
        )

    over_quota = create_of(2000)
    assert over_quota.status_code == 413 and over_quota.json()["error"]["code"] == "storage_quota_exceeded"
    too_large = create_of(20_000)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "payload_too_large"
    assert create_of(1000).status_code == 201  # the whole quota, reserved
    assert create_of(1).json()["error"]["code"] == "storage_quota_exceeded"  # and nothing more


def test_another_tenants_upload_is_answered_404_like_an_unknown_one(served, make_tenant, clip_small):
    mine, theirs = make_tenant(), make_tenant()
    data = clip_small.read_bytes()
    upload_id = create(served, theirs, len(data))
    for some in (upload_id, "upl_" + "0" * 24):
        assert head(served, mine, some).status_code == 404
        assert patch(served, mine, some, 0, data[:10]).status_code == 404
        gone = requests.delete(
            f"{served.url}/v1/uploads/tus/{some}", headers={**mine.headers, **TUS}, timeout=10
        )
        assert gone.status_code == 404
    assert head(served, theirs, upload_id).headers["Upload-Offset"] == "0"


def test_bad_content_completes_as_failed_with_its_code_and_leaves_nothing(served, tenant, settings):
    data = b"this is plain text, not media " * 100
    before = usage(settings, tenant.id)
    upload_id = create(served, tenant, len(data), "notes.mp4")
    last = patch(served, tenant, upload_id, 0, data)
    assert last.status_code == 422 and last.json()["error"]["code"] == "unsupported_format"
    got = requests.get(f"{served.url}/v1/uploads/{upload_id}", headers=tenant.headers, timeout=10).json()
    assert (
        got["status"] == "failed"
        and got["error"] == {"code": "unsupported_format"}
        and got["file_id"] is None
    )
    assert usage(settings, tenant.id) == before
    assert stored_under(settings, tenant.id, upload_id) == []
    assert list(from_settings(settings).list(f"t/{tenant.id}/")) == []


def test_a_second_request_while_one_holds_the_upload_is_answered_423(
    served, tenant, clip_small, app, settings
):
    data = clip_small.read_bytes()
    upload_id = create(served, tenant, len(data))
    sessions = app.extensions["faktry"].sessions
    with service.locked(sessions, upload_id, service.Policy.from_settings(settings)):
        busy = patch(served, tenant, upload_id, 0, data)
        assert busy.status_code == 423 and busy.json()["error"]["code"] == "upload_locked"
        assert int(busy.headers["Retry-After"]) >= 1
    assert patch(served, tenant, upload_id, 0, data).status_code == 204


def test_tuspy_reports_a_refused_creation(served, tenant, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(TusCommunicationError):
        tus_client(served, tenant).uploader(str(empty)).upload()


def test_an_uploads_reservation_outlives_the_usual_sweep_and_lasts_as_long_as_the_upload(
    served, tenant, clip_small, settings, app
):
    from pipelines.reconcile import RESERVATION_MAX_AGE
    from quotas.limits import sweep_reservations

    upload_id = create(served, tenant, clip_small.stat().st_size)
    reservation = upload_row(settings, upload_id).reservation_id
    sessions = app.extensions["faktry"].sessions
    clock.advance(RESERVATION_MAX_AGE * 3)  # older than any write's reservation may be
    with transaction(sessions) as session:
        assert sweep_reservations(session, RESERVATION_MAX_AGE) == 0
        reserved = session.scalars(
            select(StorageReservation).where(StorageReservation.tenant_id == tenant.id)
        ).all()
        assert [r.id for r in reserved] == [reservation]
    # Past the upload's expiry its sweep gives it back; past its grace the reservation sweep would.
    clock.advance(timedelta(hours=settings.upload_expiry_hours))
    sweep(sessions, from_settings(settings), service.Policy.from_settings(settings))
    assert usage(settings, tenant.id)[1] == 0
