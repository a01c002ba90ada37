"""Every operation that takes a JSON body refuses a field it does not know, and every paged
list refuses a ``limit`` outside its range: both walk the OpenAPI document, so an operation
added later is held to the same rule without more ado."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import pagination
from web.openapi_doc import build

PASSWORD = "correct horse battery staple"
JSON = "application/json"
METHODS = ("get", "put", "post", "patch", "delete")
UNKNOWN = "colour_of_the_sky"
#: Stripe's events are Stripe's to shape: the webhook takes whatever a signed event holds.
OPEN_BODIES = {"POST /v1/billing/webhook"}
GRAPH = {
    "nodes": {
        "shot": {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": "a chair"}}
    }
}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in build()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _json_body_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for method, path, op in _operations()
        if JSON in op.get("requestBody", {}).get("content", {})
    ]


def _paged_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for method, path, op in _operations()
        if any(p["name"] == "limit" and p["in"] == "query" for p in op.get("parameters", []))
    ]


class Caller:
    """A logged-in member of staff (a web session with its CSRF token, so that session-only and
    staff-only operations answer too), with one of each resource a path can name."""

    def __init__(self, client: Any, make_tenant: Any) -> None:
        self.client = client
        staff = make_tenant(admin=True, password=PASSWORD)
        self.tenant_id = staff.id
        login = client.post("/v1/session", json={"email": staff.email, "password": PASSWORD})
        assert login.status_code == 201, login.json
        self.headers = {"X-CSRF-Token": login.json["csrf_token"]}
        workflow = self.made("/v1/workflows", {"name": "walk", "graph": GRAPH})
        self.ids = {
            "workflow_id": workflow,
            "run_id": self.made("/v1/workflow-runs", {"graph": GRAPH}),
            "brand_id": self.made("/v1/brands", {"name": "walk"}),
            "project_id": self.made("/v1/projects", {"name": "walk"}),
            "endpoint_id": self.made("/v1/webhook-endpoints", {"url": "https://hooks.example.com/in"}),
            "key_id": self.made("/v1/keys", {"name": "walk"}),
            "tenant_id": staff.id,
            # A gallery entry's body is checked before the entry is looked up.
            "entry_id": "gal_" + "0" * 24,
            "user_id": staff.user_id,
            "invitation_id": "inv_" + "0" * 24,
            "upl_id": self.made("/v1/uploads", {"filename": "walk.mp4", "size": 1000}),
        }

    def made(self, path: str, body: dict[str, Any]) -> str:
        r = self.client.post(path, json=body, headers=self.headers)
        assert r.status_code in (201, 202), (path, r.json)
        return str(r.json["id"])

    def path(self, template: str) -> str:
        for name, value in self.ids.items():
            template = template.replace("{" + name + "}", value)
        assert "{" not in template, f"give {template} a real resource in Caller"
        return template


@pytest.fixture
def caller(client, make_tenant) -> Caller:
    return Caller(client, make_tenant)


def test_every_json_body_but_stripes_events_is_a_closed_object_in_the_document():
    schemas = build()["components"]["schemas"]
    for method, path, op in _json_body_operations():
        schema = op["requestBody"]["content"][JSON]["schema"]
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        label = f"{method} {path}"
        branches = [schemas[b["$ref"].rsplit("/", 1)[-1]] for b in schema.get("oneOf", [])]
        closed = schema.get("additionalProperties") is False or (
            bool(branches) and all(b.get("additionalProperties") is False for b in branches)
        )
        assert closed == (label not in OPEN_BODIES), label


def test_an_unknown_field_is_refused_by_every_operation_that_takes_a_json_body(caller):
    misses = []
    walked = 0
    for method, path, op in _json_body_operations():
        if f"{method} {path}" in OPEN_BODIES:
            continue
        example = op["requestBody"]["content"][JSON]["example"]
        body = {**example, UNKNOWN: "blue"}
        r = caller.client.open(caller.path(path), method=method, json=body, headers=caller.headers)
        error = (r.get_json(silent=True) or {}).get("error", {})
        walked += 1
        if (r.status_code, error.get("code"), error.get("field")) != (422, "unknown_field", UNKNOWN):
            misses.append((method, path, r.status_code, error))
        elif UNKNOWN not in error["message"]:
            misses.append((method, path, "the message does not name the field", error["message"]))
    assert walked >= 25  # the walk reached the operations, not an empty list
    assert misses == []


@pytest.mark.parametrize("name", ["POST /v1/keys", "POST /v1/signup"])
def test_keys_and_signup_name_the_unknown_field_and_what_they_take(client, tenant, name):
    method, path = name.split(" ")
    sent = (
        {"name": "ci", "permissions": ["read"]}
        if path == "/v1/keys"
        else {"email": "a@example.com", "nick": "x"}
    )
    r = client.open(path, method=method, json=sent, headers=tenant.headers)
    assert r.status_code == 422
    error = r.json["error"]
    assert error["code"] == "unknown_field"
    assert error["field"] in ("permissions", "nick")
    assert "this endpoint takes:" in error["message"]


def test_every_paged_list_documents_limit_with_its_range():
    paged = _paged_operations()
    assert len(paged) >= 12
    for method, path, op in _operations():
        answer = op["responses"].get("200", {}).get("content", {}).get(JSON, {}).get("schema", {})
        ref = answer.get("$ref", "")
        schema = build()["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else answer
        if "next_cursor" in schema.get("properties", {}):
            assert (method, path, op) in paged, f"{method} {path} pages without a documented limit"
    for method, path, op in paged:
        limit = next(p for p in op["parameters"] if p["name"] == "limit")["schema"]
        assert (limit["minimum"], limit["maximum"]) == (1, pagination.MAX_LIMIT), (method, path)


def test_a_limit_outside_its_range_is_refused_by_every_paged_list(caller):
    misses = []
    for method, path, op in _paged_operations():
        url = caller.path(path)
        limit = next(p for p in op["parameters"] if p["name"] == "limit")["schema"]
        for value in ("0", "-1", str(limit["maximum"] + 1), "1000000", "ten", "2.5", ""):
            r = caller.client.open(url, method=method, query_string={"limit": value}, headers=caller.headers)
            error = (r.get_json(silent=True) or {}).get("error", {})
            if (r.status_code, error.get("field")) != (422, "limit"):
                misses.append((method, path, value, r.status_code, error))
        for value in ("1", str(limit["maximum"])):
            r = caller.client.open(url, method=method, query_string={"limit": value}, headers=caller.headers)
            if r.status_code != 200:
                misses.append((method, path, value, r.status_code, r.get_json(silent=True)))
    assert misses == []
