"""The API reference: every operation of the OpenAPI document shows an example request and
an example answer that agree with its schemas, and ``/docs`` renders the document with the
vendored Redoc, loading nothing from another origin. Also what the reference promises about
key names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from faktry import clock
from web.openapi_doc import build

ROOT = Path(__file__).resolve().parents[2]
JSON = "application/json"
METHODS = ("get", "put", "post", "patch", "delete")
OPERATIONS = [
    pytest.param(method, path, operation, id=f"{method.upper()} {path}")
    for path, item in build()["paths"].items()
    for method, operation in item.items()
    if method in METHODS
]


def _valid(schema: dict[str, Any], value: Any) -> list[str]:
    """What is wrong with ``value`` against ``schema``, whose references point into the
    document's components."""
    root = {"components": build()["components"], **schema}
    validator = jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_operation_has_an_example_request_and_answer_that_fit_its_schemas(method, path, operation):
    samples = {sample["label"]: sample["source"] for sample in operation["x-codeSamples"]}
    assert set(samples) == {"curl", "Python"}
    # The request names the operation's method and path, parameters filled in.
    concrete = re.sub(r"\{(\w+)\}", r"[^/\"?]+", path)
    assert re.search(rf'-X {method.upper()} "\$FAKTRY_URL{concrete}', samples["curl"]), samples["curl"]
    assert f"requests.{method}(" in samples["Python"]
    compile(samples["Python"], f"{method} {path}", "exec")  # it runs as written
    public = operation.get("security") == []
    assert ("Authorization: Bearer $FAKTRY_KEY" in samples["curl"]) is not public

    body = operation.get("requestBody")
    if body is not None:
        if JSON in body["content"]:
            media = body["content"][JSON]
            assert "example" in media, "a JSON body without an example"
            assert _valid(media["schema"], media["example"]) == []
            assert "-d '" in samples["curl"] and "json=" in samples["Python"]
        elif "multipart/form-data" in body["content"]:
            assert '-F "file=@' in samples["curl"] and "files=" in samples["Python"]
        else:  # raw bytes of their own type (a tus PATCH)
            (media_type,) = body["content"]
            assert (
                f'-H "Content-Type: {media_type}"' in samples["curl"] and "--data-binary @" in samples["curl"]
            )
            assert (
                f'"Content-Type": "{media_type}"' in samples["Python"] and "data=open(" in samples["Python"]
            )

    successes = {status: r for status, r in operation["responses"].items() if status.startswith("2")}
    assert successes, "no success status"
    for status, response in successes.items():
        for media_type, media in response.get("content", {}).items():
            if media["schema"].get("contentMediaType"):
                continue  # the file's own bytes: nothing to show
            assert "example" in media, f"{status} {media_type} without an example answer"
            assert _valid(media["schema"], media["example"]) == [], (status, media_type)


def test_a_job_submission_example_is_a_real_transcode_of_an_uploaded_file():
    media = build()["paths"]["/v1/jobs"]["post"]["requestBody"]["content"][JSON]
    assert media["example"]["type"] == "video.transcode"
    assert media["example"]["input"]["file_id"].startswith("fil_")


def test_the_reference_page_renders_the_document_with_the_vendored_renderer(client):
    r = client.get("/docs")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'data-spec-url="/v1/openapi.json"' in html
    scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    assert "/static/vendor/redoc/redoc.standalone.js" in scripts
    # Nothing from another origin: every script, style sheet and link stays on faktry.
    for url in re.findall(r'\b(?:src|href)="([^"]+)"', html):
        assert url.startswith(("/", "#", "data:")), url
    renderer = client.get("/static/vendor/redoc/redoc.standalone.js")
    assert renderer.status_code == 200 and b"Redoc" in renderer.data[:2000]
    renderer.close()
    assert (ROOT / "web/static/vendor/redoc/LICENSE").read_text().startswith("The MIT License")


def test_the_reference_page_lets_redocs_styles_and_search_worker_in_and_scripts_stay_strict(client):
    r = client.get("/docs")
    policy = dict((d.split()[0], d.split()[1:]) for d in r.headers["Content-Security-Policy"].split("; "))
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["worker-src"] == ["blob:"]
    nonce = re.search(r'<script nonce="([^"]+)"', r.get_data(as_text=True)).group(1)
    assert policy["script-src"][:2] == ["'self'", f"'nonce-{nonce}'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    # Other pages keep the strict policy.
    login = client.get("/login").headers["Content-Security-Policy"]
    assert "style-src 'self';" in login and "worker-src" not in login


def test_the_reference_page_needs_no_account(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert "Log in" in r.get_data(as_text=True)


# -- key names, as the reference describes them ----------------------------------------------


def test_a_key_without_a_name_or_with_a_blank_one_is_named_after_when_it_was_made(client, tenant):
    clock.freeze(datetime(2026, 1, 15, 9, 30, 12, tzinfo=UTC))
    description = build()["components"]["schemas"]["NewApiKeyRequest"]["properties"]["name"]["description"]
    assert "`Key created 2026-01-15 09:30 UTC`" in description
    for body in (None, {}, {"name": ""}, {"name": "   \t"}):
        r = client.post("/v1/keys", json=body, headers=tenant.headers)
        assert r.status_code == 201, r.json
        assert r.json["name"] == "Key created 2026-01-15 09:30 UTC"


def test_a_key_name_keeps_its_words_without_the_spaces_around_them(client, tenant):
    r = client.post("/v1/keys", json={"name": "  render server  "}, headers=tenant.headers)
    assert r.status_code == 201
    assert r.json["name"] == "render server"
    listed = client.get("/v1/keys", headers=tenant.headers).json["data"]
    assert "render server" in [k["name"] for k in listed]


@pytest.mark.parametrize("name", [7, None, "x" * 101])
def test_a_key_name_that_is_not_short_text_is_refused(client, tenant, name):
    r = client.post("/v1/keys", json={"name": name}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json["error"]["field"] == "name"
