"""``/v1/openapi.json``: a valid OpenAPI 3.1 document that covers every route, and an API that
answers as it says. Schemathesis generates requests from the served document and runs them
in-process against the WSGI app; every response must have a documented status, media type,
headers and body.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipelines.jobtypes import JOB_TYPES
from web.openapi_doc import build

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
PASSWORD = "correct horse battery staple"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Every operation, read from the document itself: a route added to it is fuzzed without more ado.
OPERATIONS = [
    (method.upper(), path) for path, item in build()["paths"].items() for method in item if method in HTTP_METHODS
]


def _as_openapi_path(rule: str) -> str:
    """``/v1/files/<file_id>/content/<path:relpath>`` -> ``/v1/files/{file_id}/content/{relpath}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


# -- the document ------------------------------------------------------------------------------


def test_the_served_document_is_valid_openapi_3_1(app):
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    schema.validate()
    assert schema.raw_schema["openapi"].startswith("3.1.")
    for method, path in OPERATIONS:
        assert schema[path][method].label == f"{method} {path}"


def test_every_route_under_v1_is_documented_with_its_methods(app, client):
    routes = {
        (method, _as_openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = set(OPERATIONS)
    assert routes - documented == set(), "routes missing from web/openapi_doc.py"
    assert documented - routes == set(), "documented operations without a route"
    assert client.get("/v1/openapi.json").json == build()


def test_a_job_submission_is_one_of_the_job_types_with_their_own_params_schemas():
    schemas = build()["components"]["schemas"]
    submission = schemas["JobSubmission"]
    by_type = {
        schemas[ref.rsplit("/", 1)[-1]]["properties"]["type"]["const"]: schemas[ref.rsplit("/", 1)[-1]]
        for ref in submission["discriminator"]["mapping"].values()
    }
    assert set(by_type) == set(JOB_TYPES)
    assert len(submission["oneOf"]) == len(JOB_TYPES)
    for name, job_type in JOB_TYPES.items():
        assert by_type[name]["properties"]["params"] == job_type.params_schema
        assert ("params" in by_type[name].get("required", [])) == bool(job_type.params_schema.get("required"))


def test_the_document_is_built_once():
    assert build() is build()


# -- the API answers as documented -------------------------------------------------------------


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), "teal").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Half a second of H.264, so video job types can be submitted; None without ffmpeg."""
    if not shutil.which("ffmpeg"):
        return None
    out = tmp_path_factory.mktemp("openapi") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "testsrc=size=64x48:rate=10:duration=0.5", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(out)],
        check=True, timeout=60,
    )  # fmt: skip
    return out


class Seeds:
    """Real resources of the tenant, so generated requests reach more than 404s and 422s."""

    def __init__(self, client: Any, tenant: Any, make_tenant: Callable[..., Any], clip: Path | None) -> None:
        def upload(name: str, data: bytes) -> str:
            r = client.post(
                "/v1/files",
                headers=tenant.headers,
                data={"file": (io.BytesIO(data), name)},
                content_type="multipart/form-data",
            )
            assert r.status_code == 201, r.json
            return str(r.json["id"])

        self.file_ids = [upload("tiny.png", _png())]
        if clip is not None:
            self.file_ids.append(upload("clip.mp4", clip.read_bytes()))
        job = client.post(
            "/v1/jobs", headers=tenant.headers, json={"type": "media.probe", "input": {"file_id": self.file_ids[0]}}
        )
        assert job.status_code == 202, job.json
        self.job_id = str(job.json["id"])
        key = client.post("/v1/keys", headers=tenant.headers, json={"name": "spare"})
        assert key.status_code == 201, key.json
        self.key_id = str(key.json["id"])
        user = make_tenant(password=PASSWORD)
        self.login = {"email": user.email, "password": PASSWORD}

    def path_parameters(self) -> st.SearchStrategy[dict[str, str]]:
        return st.fixed_dictionaries(
            {"file_id": st.sampled_from(self.file_ids), "job_id": st.just(self.job_id), "key_id": st.just(self.key_id)}
        )


@pytest.fixture
def seeds(client, tenant, make_tenant, tiny_clip) -> Seeds:
    return Seeds(client, tenant, make_tenant, tiny_clip)


def _strategy(operation: Any, seeds: Seeds) -> st.SearchStrategy[Any]:
    """Generated cases, mixed with cases that name the tenant's real resources."""
    options = [operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)]
    names = {p.name for p in operation.path_parameters}
    if names:
        options.append(
            seeds.path_parameters().flatmap(
                lambda known: operation.as_strategy(path_parameters={n: known[n] for n in names if n in known})
            )
        )
    if operation.label == "POST /v1/jobs":
        options.append(st.tuples(operation.as_strategy(), st.sampled_from(seeds.file_ids)).map(_with_input))
    if operation.label == "POST /v1/session":
        options.append(operation.as_strategy(body=seeds.login))
    return st.one_of(options)


def _with_input(drawn: tuple[Any, str]) -> Any:
    case, file_id = drawn
    case.body = {**case.body, "input": {"file_id": file_id}}
    return case


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_api_answers_as_documented(app, tenant, seeds, method, path):
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    operation = schema[path][method]

    @given(case=_strategy(operation, seeds))
    @settings(
        max_examples=int(__import__("os").environ.get("N", "20")),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        try:
            r = case.call_and_validate(headers=tenant.headers, checks=CHECKS)
        except Exception:
            print("\nFAILCASE", case.as_curl_command(), case.body if not isinstance(case.body, dict) or "file" not in case.body else "<file>")
            raise
        seen.append(r.status_code)

    seen = []
    try:
        check()
    finally:
        import collections
        print("\nSTATS", method, path, dict(collections.Counter(seen)))
