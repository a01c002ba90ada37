"""Body limits per route (web/guard.py) and unknown fields (web/bodies.py).

Every route but uploads takes a small body (``FAKTRY_MAX_BODY_BYTES``) and refuses a larger
one with ``413 body_too_large`` before any other work, unauthenticated routes included: by
``Content-Length`` without reading a byte, by counting when chunked. Uploads take bodies up
to the upload limit, one of a few slots at a time. Every JSON endpoint refuses a field it
does not know, nested ones with their path, as the OpenAPI document's closed schemas say.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Response
from PIL import Image
from werkzeug.test import EnvironBuilder, run_wsgi_app

from web import create_app
from web.openapi_doc import build
from workers.broker import BrokerSender

LIMIT = 1024**2  # the default


class Counted(io.BytesIO):
    """A request body that counts how much of it the server read."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.taken += n
        return n

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.taken += len(data)
        return data


def sent(
    app: Any,
    path: str,
    body: Counted,
    *,
    chunked: bool = False,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Response:
    """POST ``body`` as a client would: with its ``Content-Length``, or chunked (no length;
    the server ends the stream, as gunicorn does). Straight to the WSGI app: the test
    client would measure the stream and send a length."""
    environ = EnvironBuilder(
        path=path, method="POST", headers=headers, content_type=content_type
    ).get_environ()
    environ["wsgi.input"] = body
    environ["CONTENT_TYPE"] = content_type  # as sent (the builder makes its own multipart boundary)
    if chunked:
        environ.pop("CONTENT_LENGTH", None)
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(len(body.getvalue()))
    answer, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    return Response(b"".join(answer), status=status, headers=response_headers)


def unknown_fields(size: int) -> Counted:
    filler = b'"f%07d": 0, '
    count = size // len(filler % 0)
    return Counted(b"{" + b"".join(filler % i for i in range(count)) + b'"name": "x"}')


def assert_too_large(r: Any, limit: int = LIMIT) -> None:
    assert r.status_code == 413, r.get_data(as_text=True)
    assert r.json["error"]["code"] == "body_too_large" and r.json["error"]["limit"] == limit


def test_post_keys_refuses_ten_megabytes_of_unknown_fields_without_reading_them(app, tenant):
    body = unknown_fields(10 * 1024**2)
    assert_too_large(sent(app, "/v1/keys", body, headers=tenant.headers))
    assert body.taken == 0


@pytest.mark.parametrize("path", ["/v1/session", "/v1/signup", "/v1/keys"])
def test_an_anonymous_body_over_the_limit_is_refused_before_any_other_work(app, path):
    # POST /v1/keys wants credentials: the size is refused first, not the missing key.
    body = unknown_fields(2 * LIMIT)
    assert_too_large(sent(app, path, body))
    assert body.taken == 0


@pytest.mark.parametrize("path", ["/v1/session", "/v1/keys"])
def test_a_chunked_body_is_counted_and_refused_once_past_the_limit(app, tenant, path):
    body = unknown_fields(20 * LIMIT)
    assert_too_large(sent(app, path, body, chunked=True, headers=tenant.headers))
    assert LIMIT < body.taken < LIMIT + 256 * 1024  # stopped near the limit, not at the end


def test_a_chunked_body_within_the_limit_is_taken(app, tenant):
    r = sent(app, "/v1/keys", Counted(b'{"name": "chunked"}'), chunked=True, headers=tenant.headers)
    assert r.status_code == 201 and r.json["name"] == "chunked"


@pytest.fixture
def small_app(settings: Any, runtime: Any) -> Any:
    application = create_app(settings.replace(max_body_bytes=4096), sender=BrokerSender(runtime.broker))
    application.testing = True
    return application


def test_the_small_limit_is_a_setting_and_only_uploads_take_more(small_app, tenant, tmp_path):
    client = small_app.test_client()
    assert_too_large(sent(small_app, "/v1/keys", unknown_fields(5000), headers=tenant.headers), limit=4096)
    noise = tmp_path / "noise.png"
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(noise)
    assert noise.stat().st_size > 4096
    with noise.open("rb") as fh:
        r = client.post(
            "/v1/files",
            headers=tenant.headers,
            data={"file": (fh, "noise.png")},
            content_type="multipart/form-data",
        )
    assert r.status_code == 201, r.json


def test_an_upload_over_the_caps_is_refused_with_429_before_its_body_is_read(app, tenant, png_image):
    slots = app.extensions["faktry"].uploads
    body = Counted(
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n\r\n'
        + png_image.read_bytes()
        + b"\r\n--b--\r\n"
    )
    with slots.slot(tenant.id, "10.1.1.1"), slots.slot(tenant.id, "10.1.1.2"):  # the tenant's two
        r = sent(
            app, "/v1/files", body, headers=tenant.headers, content_type="multipart/form-data; boundary=b"
        )
    assert r.status_code == 429 and r.json["error"]["code"] == "too_many_uploads"
    assert int(r.headers["Retry-After"]) == r.json["error"]["retry_after"] > 0
    assert body.taken == 0
    assert slots.taken("process") == slots.taken("tenant", tenant.id) == 0
    body.seek(0)
    r = sent(app, "/v1/files", body, headers=tenant.headers, content_type="multipart/form-data; boundary=b")
    assert r.status_code == 201, r.json
    assert slots.taken("process") == 0  # the slot is given back when the upload is done
    assert not list(app.extensions["faktry"].settings.tmp_dir.glob("upload-*"))  # nor is its temp file kept


# -- unknown fields -------------------------------------------------------------------------------


@pytest.fixture
def staff(make_tenant: Any) -> Any:
    return make_tenant(admin=True)


def _endpoints(tenant_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    job = {"type": "media.probe", "input": {"file_id": "fil_x"}}
    yield "/v1/jobs", {**job, "priority": 1}
    yield "/v1/jobs/quote", {**job, "priority": 1}
    yield "/v1/jobs/batch", {"jobs": [job], "priority": 1}
    yield "/v1/keys", {"name": "x", "priority": 1}
    yield "/v1/billing/checkout", {"pack": "small", "priority": 1}
    yield f"/v1/admin/tenants/{tenant_id}/credits", {"credits": 1, "reason": "r", "priority": 1}


def test_every_json_endpoint_refuses_a_field_it_does_not_know(client, staff, tenant):
    for path, body in _endpoints(tenant.id):
        r = client.post(path, json=body, headers=staff.headers)
        assert r.status_code == 422, (path, r.json)
        assert r.json["error"]["code"] == "unknown_field" and r.json["error"]["field"] == "priority", path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "image.resize", "input": {"file_id": "fil_x"}, "params": {"width": 9, "height": 9, "dpi": 72}},
         "params.dpi"),
        ({"type": "media.probe", "input": {"file_id": "fil_x", "link": "http://x"}}, "input.link"),
        ({"type": "image.generate", "input": {"prompt": "a cat"}, "params": {"model": "local-image", "seed2": 1}},
         "params.seed2"),
    ],
)  # fmt: skip
def test_unknown_nested_fields_are_refused_with_their_path(client, tenant, body, field):
    if body["type"] == "image.generate":
        from pipelines.catalog import default_catalog

        body["params"]["model"] = default_catalog().for_type("image.generate")[0].id
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] == "unknown_field" and r.json["error"]["field"] == field
    batch = client.post("/v1/jobs/batch", json={"jobs": [body]}, headers=tenant.headers)
    [item] = batch.json["error"]["items"]
    assert item["code"] == "unknown_field" and item["field"] == f"jobs[0].{field}"


def _closed(schema: dict[str, Any], components: dict[str, Any]) -> list[str]:
    """Paths inside ``schema`` to objects that take properties they do not list."""
    if "$ref" in schema:
        return _closed(components[schema["$ref"].rsplit("/", 1)[1]], components)
    found = []
    for alternative in schema.get("oneOf", []):
        found += _closed(alternative, components)
    if schema.get("type") == "object" and "properties" in schema:
        if schema.get("additionalProperties") is not False:
            found.append(str(sorted(schema["properties"])))
        for name, prop in schema["properties"].items():
            if name != "metadata":  # a job's metadata is the caller's own, any JSON object
                found += _closed(prop, components)
    return found


def test_the_openapi_document_says_every_json_body_is_closed():
    doc = build()
    components = doc["components"]["schemas"]
    bodies = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content or path == "/v1/billing/webhook":  # Stripe's event
                continue
            bodies += 1
            assert _closed(content["application/json"]["schema"], components) == [], (method, path)
    assert bodies >= 8
