"""Every answer carries ``X-Content-Type-Options: nosniff`` (API, pages, errors, static files,
downloads, ``/metrics``, ``/healthz``), and a stored file of a type a browser would run is
only ever downloaded as an attachment."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from faktry.db import new_id, transaction
from pipelines.files import served_inline
from storage.local import LocalStorage
from storage.models import File
from tests.web.helpers import upload

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
HTML = {"Accept": "text/html"}


def _path(rule: Any) -> str:
    """The rule with each variable filled in (a real static file for ``/static``)."""
    values = {"filename": "faktry.css", "relpath": "a/b.m3u8"}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1), "x"), rule.rule)


def test_every_route_answers_with_nosniff_whoever_asks_and_however_it_ends(app, client, make_tenant):
    @app.get("/test-only/boom")
    def boom() -> Any:  # an unexpected error: werkzeug's 500, turned into faktry's
        raise RuntimeError("boom")

    tenant = make_tenant()
    staff = make_tenant(admin=True)
    answers = []
    for rule in app.url_map.iter_rules():
        path = _path(rule)
        for method in METHODS:  # the rule's methods, and the others (405)
            for headers in ({}, tenant.headers, staff.headers, HTML):
                r = client.open(path, method=method, headers=headers, json={})
                answers.append((method, path, headers.get("Accept", "api"), r.status_code, r.headers))
    for path in ("/no-such-page", "/v1/no-such-thing", "/v1/jobs/", "/static/no-such-file.js"):
        for headers in ({}, HTML):
            r = client.get(path, headers=headers)
            answers.append(("GET", path, "", r.status_code, r.headers))
    missing = [
        (m, p, who, status)
        for m, p, who, status, h in answers
        if h.get("X-Content-Type-Options") != "nosniff"
    ]
    assert missing == []
    statuses = {status for *_, status, _ in answers}
    # The sweep saw successes, redirects, client errors and a server error.
    assert {200, 302, 401, 403, 404, 405, 422, 500} <= statuses


def test_a_download_is_inline_only_for_media_a_browser_cannot_run(client, tenant, png_image):
    file_id = upload(client, tenant, png_image).json["id"]
    r = client.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert "attachment" not in r.headers.get("Content-Disposition", "")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


RUNNABLE = [
    ("text/html", b"<script>alert(document.cookie)</script>"),
    ("text/html; charset=utf-8", b"<script>alert(1)</script>"),
    ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("application/xhtml+xml", b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>'),
    ("text/xml", b"<?xml version='1.0'?><a/>"),
    ("application/xml", b"<?xml version='1.0'?><a/>"),
    ("application/javascript", b"alert(1)"),
    ("text/javascript", b"alert(1)"),
    ("application/pdf", b"%PDF-1.4"),
    ("application/octet-stream", b"<html><script>alert(1)</script>"),
    ("TEXT/HTML", b"<script>alert(1)</script>"),
]


def _stored(app: Any, tenant: Any, content_type: str, data: bytes) -> str:
    """A file of the tenant of any type, as a provider's output could be (uploads are sniffed
    and only media are taken)."""
    services = app.extensions["faktry"]
    file_id = new_id("fil")
    key = f"t/{tenant.id}/files/{file_id}/original.bin"
    services.storage.put_stream(key, io.BytesIO(data), content_type=content_type)
    with transaction(services.sessions) as session:
        session.add(
            File(
                id=file_id, tenant_id=tenant.id, origin="output", storage_key=key, size=len(data),
                total_size=len(data), content_type=content_type, kind="other",
                sha256=hashlib.sha256(data).hexdigest(), filename="page.html",
            )
        )  # fmt: skip
    return file_id


class StreamingStorage:
    """The local storage as a backend that can neither sign URLs nor hand out local paths, so
    downloads take the streaming path that other such backends take."""

    def __init__(self, inner: LocalStorage) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("streamed", [False, True], ids=["local file", "streamed"])
@pytest.mark.parametrize(("content_type", "data"), RUNNABLE, ids=[t for t, _ in RUNNABLE])
def test_a_download_a_browser_could_run_is_an_attachment(app, client, tenant, content_type, data, streamed):
    file_id = _stored(app, tenant, content_type, data)
    services = app.extensions["faktry"]
    if streamed:
        services.storage = StreamingStorage(services.storage)
    r = client.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert r.status_code == 200 and r.get_data() == data
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("content_type", "inline"),
    [
        ("image/png", True),
        ("video/mp4", True),
        ("audio/mpeg", True),
        ("application/vnd.apple.mpegurl", True),
        ("Image/PNG; q=1", True),
        ("image/svg+xml", False),
        ("text/html", False),
        ("text/plain", False),
        ("application/json", False),
        ("", False),
        (None, False),
    ],
)
def test_only_media_on_the_safe_list_are_served_inline(content_type, inline):
    assert served_inline(content_type) is inline


def test_the_safe_list_holds_every_type_faktry_itself_gives_stored_files():
    """What uploads are sniffed as, and what outputs are stored as, previews in the browser."""
    import pipelines

    root = Path(pipelines.__file__).parent
    sources = [root / "media" / "detect.py", root / "steps" / "media.py", root / "runner.py"]
    text = "".join(path.read_text() for path in sources)
    types = set(re.findall(r'"((?:image|video|audio)/[\w.+-]+|application/vnd\.apple\.mpegurl)"', text))
    assert types and all(served_inline(t) for t in types), sorted(t for t in types if not served_inline(t))
