"""``/v1/uploads``: uploads that arrive in pieces (pipelines/uploads), for large files and
shaky networks. ``POST /v1/files`` stays the way in for small files.

- **tus 1.0.0** at ``/v1/uploads/tus`` (creation, expiration, termination, checksum): ``POST``
  creates an upload (``Upload-Length``, ``Upload-Metadata`` with ``filename`` and
  ``filetype``), ``HEAD /v1/uploads/tus/<id>`` says its offset, ``PATCH`` appends
  (``Content-Type: application/offset+octet-stream``, ``Upload-Offset``, optionally
  ``Upload-Checksum``), ``DELETE`` terminates it. The PATCH that brings the last byte
  answers with ``Faktry-File-Id``. ``OPTIONS`` tells the server's capabilities, without
  credentials. Every answer carries ``Tus-Resumable: 1.0.0``; a request without it is
  answered 412.
- **Direct to S3**: ``POST /v1/uploads`` with ``{"filename", "size", "content_type"?}``
  answers presigned part URLs to PUT the bytes to (``protocol: s3_multipart``), then
  ``POST /v1/uploads/<id>/complete`` makes the file. Where storage is local it creates a tus
  upload instead (``protocol: tus``, its ``tus_url``).
- ``GET`` and ``DELETE /v1/uploads/<id>`` read and abort either kind.

Credentials as for the rest of the API (an API key, or the session cookie with its
``X-CSRF-Token`` on writes; tus clients send them as custom headers); uploads need
``files:write`` like ``POST /v1/files``, reading one ``files:read``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from email.utils import format_datetime
from typing import Any

from flask import Response, request

from faktry.errors import FaktryError, Gone, PayloadTooLarge, ValidationError
from faktry.tenancy import Tenant
from pipelines import files
from pipelines.uploads import service
from pipelines.uploads.models import CANCELLED, COMPLETED, EXPIRED, FAILED, S3_MULTIPART, TUS, Upload
from quotas.limits import TierLimits, tier_limits
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.bodies import json_object
from web.guard import large_body

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,expiration,termination,checksum"
OFFSET_STREAM = "application/offset+octet-stream"


class TusPreconditionFailed(FaktryError):
    code = "tus_version_unsupported"
    status = 412

    def __init__(self) -> None:
        super().__init__(f"send Tus-Resumable: {TUS_VERSION}", details={"tus_version": TUS_VERSION})
        self.headers = {"Tus-Version": TUS_VERSION}


def _bad_header(name: str, message: str) -> FaktryError:
    return ValidationError(message, field=name, status=400, code="invalid_tus_request")


@blueprint.after_request
def _tus_headers(response: Response) -> Response:
    if request.path == "/v1/uploads/tus" or request.path.startswith("/v1/uploads/tus/"):
        response.headers["Tus-Resumable"] = TUS_VERSION
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _policy() -> service.Policy:
    return service.Policy.from_settings(services().settings)


def _limits(sess: Any) -> TierLimits:
    tenant = sess.get(Tenant, principal().tenant_id)
    return tier_limits(sess, tenant.tier if tenant else "free")


def _tenant_sessions() -> Any:
    from faktry.db import for_tenant

    return for_tenant(services().sessions, principal().tenant_id)


def _max_size(limits: TierLimits) -> int:
    return min(services().settings.max_upload_bytes, limits.max_upload_bytes)


def _expires(row: Upload) -> str:
    return format_datetime(row.expires_at, usegmt=True)


def _require_tus() -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise TusPreconditionFailed()


def _lookup(upload_id: str) -> Upload:
    """The caller's upload (404 otherwise), found before any header is judged: another
    tenant's id is answered exactly as an unknown one."""
    return service.get(db(), upload_id)


# -- tus ---------------------------------------------------------------------------------------


def tus_options() -> Any:
    """What this tus server does: no credentials needed, nothing about anyone's uploads."""
    settings = services().settings
    return Response(
        status=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Checksum-Algorithm": ",".join(service.CHECKSUMS),
            "Tus-Max-Size": str(settings.max_upload_bytes),
        },
    )


@authenticated
def _tus_create() -> Any:
    _require_tus()
    length = request.headers.get("Upload-Length", "")
    if not length.isascii() or not length.isdigit() or len(length) > 18:
        if request.headers.get("Upload-Defer-Length"):
            raise _bad_header("Upload-Defer-Length", "this server needs the Upload-Length at creation")
        raise _bad_header("Upload-Length", "send the upload's size in bytes as Upload-Length")
    metadata = _metadata(request.headers.get("Upload-Metadata", ""))
    sess = db()
    limits = _limits(sess)
    sess.commit()  # the reservation takes the account's lock in a transaction of its own
    row = service.create(
        _tenant_sessions(), services().storage, _policy(), tenant_id=principal().tenant_id, limits=limits,
        protocol=TUS, filename=metadata.get("filename", ""), size=int(length),
        content_type=metadata.get("filetype"),
    )  # fmt: skip
    return Response(
        status=201,
        headers={
            "Location": f"/v1/uploads/tus/{row.id}",
            "Upload-Expires": _expires(row),
            "Upload-Offset": "0",
        },
    )


@blueprint.route("/uploads/tus", methods=["POST", "OPTIONS"], provide_automatic_options=False)
def tus_create() -> Any:
    if request.method == "OPTIONS":
        return tus_options()
    return _tus_create()


tus_create.faktry_guarded = True  # type: ignore[attr-defined]


def _metadata(raw: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (a value may be absent)."""
    found: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise _bad_header(
                "Upload-Metadata", f"the value of {key!r} is not base64 of UTF-8 text"
            ) from None
    return found


@blueprint.route("/uploads/tus/<tus_id>", methods=["HEAD"])
@authenticated
def tus_head(tus_id: str) -> Any:
    row = _lookup(tus_id)
    if row.status != COMPLETED:
        service.gone_unless_pending(row)
    _require_tus()
    return Response(status=200, headers={**_progress(row), "Upload-Length": str(row.size)})


def _progress(row: Upload) -> dict[str, str]:
    """Where an upload has got to, as HEAD and PATCH answer it; the file once completed."""
    headers = {"Upload-Offset": str(row.received), "Upload-Expires": _expires(row)}
    if row.status == COMPLETED and row.file_id:
        headers["Faktry-File-Id"] = row.file_id
    return headers


@blueprint.patch("/uploads/tus/<tus_id>")
@large_body
@authenticated
def tus_patch(tus_id: str) -> Any:
    sess = db()
    row = _lookup(tus_id)
    service.gone_unless_pending(row)
    _require_tus()
    if request.mimetype != OFFSET_STREAM:
        raise FaktryError(f"send the bytes as Content-Type: {OFFSET_STREAM}", code="unsupported_media_type",
                          status=415)  # fmt: skip
    offset = request.headers.get("Upload-Offset", "")
    if not offset.isascii() or not offset.isdigit() or len(offset) > 18:
        raise _bad_header("Upload-Offset", "send the offset the bytes start at as Upload-Offset")
    checksum = _checksum(request.headers.get("Upload-Checksum"))
    remaining = row.size - int(offset)
    if request.content_length is not None and request.content_length > max(remaining, 0):
        raise PayloadTooLarge(
            f"the upload takes {max(remaining, 0)} more bytes from byte {offset}", details={"limit": row.size}
        )
    limits = _limits(sess)
    # End the authentication's transaction: the bytes take a while, and on SQLite an open
    # transaction holds the database's write lock.
    sess.commit()
    stream = request.stream
    with services().uploads.slot(principal().tenant_id, request.remote_addr):
        row = service.append(
            _tenant_sessions(), services().storage, _policy(), upload_id=row.id, offset=int(offset),
            read=stream.read, checksum=checksum, limits=limits,
        )  # fmt: skip
    return Response(status=204, headers=_progress(row))


def _checksum(raw: str | None) -> tuple[str, bytes] | None:
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    if algorithm not in service.CHECKSUMS:
        raise _bad_header(
            "Upload-Checksum", f"checksums are {', '.join(service.CHECKSUMS)}, not {algorithm!r}"
        )
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise _bad_header("Upload-Checksum", "the checksum is not base64") from None


@blueprint.delete("/uploads/tus/<tus_id>")
@authenticated
def tus_terminate(tus_id: str) -> Any:
    sess = db()
    row = _lookup(tus_id)
    service.gone_unless_pending(row)
    _require_tus()
    sess.commit()
    service.cancel(_tenant_sessions(), services().storage, _policy(), upload_id=row.id)
    return Response(status=204)


# -- direct uploads, and every upload as a resource --------------------------------------------


@blueprint.post("/uploads")
@authenticated
def create_upload() -> Any:
    body = json_object(allowed={"filename", "size", "content_type"})
    filename, size, content_type = body.get("filename"), body.get("size"), body.get("content_type")
    if not isinstance(filename, str) or not filename.strip() or len(filename) > 1000:
        raise ValidationError("filename must be the file's name (text)", field="filename")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValidationError("size must be the file's size in bytes", field="size")
    if content_type is not None and (not isinstance(content_type, str) or len(content_type) > 100):
        raise ValidationError("content_type must be a media type", field="content_type")
    sess = db()
    limits = _limits(sess)
    sess.commit()
    storage = services().storage
    protocol = S3_MULTIPART if service.direct(storage) else TUS
    row = service.create(
        _tenant_sessions(), storage, _policy(), tenant_id=principal().tenant_id, limits=limits,
        protocol=protocol, filename=filename, size=size, content_type=content_type,
    )  # fmt: skip
    answer = service.to_dict(row)
    if protocol == S3_MULTIPART:
        answer.update(service.direct_parts(storage, row))
    return answer, 201, {"Location": f"/v1/uploads/{row.id}"}


@blueprint.get("/uploads/<upl_id>")
@authenticated
def get_upload(upl_id: str) -> Any:
    return service.to_dict(_lookup(upl_id))


@blueprint.post("/uploads/<upl_id>/complete")
@authenticated
def complete_upload(upl_id: str) -> Any:
    sess = db()
    row = _lookup(upl_id)
    body = json_object(allowed={"parts"}, optional=True)
    parts = _parts(body.get("parts")) if "parts" in body else None
    limits = _limits(sess)
    sess.commit()
    row, made = service.complete(
        _tenant_sessions(), services().storage, _policy(), upload_id=row.id, limits=limits, parts=parts
    )
    sess = db()
    answer = files.to_dict(service.file_of(sess, row))
    return answer, 201 if made else 200, {"Location": f"/v1/files/{row.file_id}"}


def _parts(raw: Any) -> list[tuple[int, str]]:
    if not isinstance(raw, list) or not raw or len(raw) > 10_000:
        raise ValidationError("parts must be a list of {number, etag}", field="parts")
    parts = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"number", "etag"}
            or not isinstance(item["number"], int)
            or isinstance(item["number"], bool)
            or not 1 <= item["number"] <= 10_000
            or not isinstance(item["etag"], str)
            or not 0 < len(item["etag"]) <= 200
        ):
            raise ValidationError("each part is {number, etag}, as S3 answered its PUT", field="parts")
        parts.append((item["number"], item["etag"]))
    if [n for n, _ in parts] != sorted({n for n, _ in parts}):
        raise ValidationError("list the parts once each, by number", field="parts")
    return parts


@blueprint.delete("/uploads/<upl_id>")
@authenticated
def abort_upload(upl_id: str) -> Any:
    sess = db()
    row = _lookup(upl_id)
    if row.status == COMPLETED:
        raise FaktryError(
            "this upload is a file now; delete the file instead", code="upload_completed", status=409,
            details={"file_id": row.file_id},
        )  # fmt: skip
    if row.status in (CANCELLED, EXPIRED, FAILED):
        return "", 204  # its bytes are gone already
    sess.commit()
    with contextlib.suppress(Gone):  # it ended meanwhile: nothing of it is left
        service.cancel(_tenant_sessions(), services().storage, _policy(), upload_id=row.id)
    return "", 204
