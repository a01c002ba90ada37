"""``/v1/workflows``: saved graphs with immutable versions, quotes for given inputs, the
templates; refused graphs answer 422 with every problem; another tenant's workflow is a 404
exactly like one that does not exist."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from faktry.db import transaction
from pipelines.workflows.models import Workflow, WorkflowVersion
from quotas import ledger
from tests.web.helpers import upload

RESIZE = {"width": 64, "height": 64}


def _graph(width: int = 64) -> dict[str, Any]:
    return {
        "inputs": {"photos": {"kind": "image", "list": True}},
        "nodes": {
            "each": {
                "type": "image.resize",
                "params": {"width": width, "height": 64},
                "input": {"file_id": {"input": "photos"}},
                "map": "file_id",
            },
            "probe": {"type": "media.probe", "input": {"file_id": {"node": "each", "output": 0}}},
        },
    }


def test_a_workflow_is_saved_listed_read_versioned_and_deleted(client, tenant):
    h = tenant.headers
    r = client.post(
        "/v1/workflows", json={"name": "thumbs", "description": "d", "graph": _graph()}, headers=h
    )
    assert r.status_code == 201, r.json
    made = r.json
    assert made["id"].startswith("wfl_") and made["version"] == 1 and made["graph"] == _graph()
    assert r.headers["Location"] == f"/v1/workflows/{made['id']}"
    assert [v["version"] for v in made["versions"]] == [1]

    other = client.post("/v1/workflows", json={"name": "other", "graph": _graph()}, headers=h).json
    page = client.get("/v1/workflows?limit=1", headers=h).json
    assert [w["id"] for w in page["data"]] == [other["id"]] and page["next_cursor"]
    rest = client.get(f"/v1/workflows?limit=1&cursor={page['next_cursor']}", headers=h).json
    assert [w["id"] for w in rest["data"]] == [made["id"]] and rest["next_cursor"] is None
    assert "graph" not in rest["data"][0]

    r = client.post(f"/v1/workflows/{made['id']}/versions", json={"graph": _graph(128)}, headers=h)
    assert r.status_code == 201, r.json
    assert r.json["version"] == 2 and r.json["graph"] == _graph(128)
    assert [v["version"] for v in r.json["versions"]] == [2, 1]
    current = client.get(f"/v1/workflows/{made['id']}", headers=h).json
    assert current["version"] == 2 and current["graph"] == _graph(128) and current["description"] == "d"
    # Versions never change: the first is still there as it was.
    first = client.get(f"/v1/workflows/{made['id']}?version=1", headers=h).json
    assert first["graph"] == _graph() and first["version"] == 2
    r = client.get(f"/v1/workflows/{made['id']}?version=3", headers=h)
    assert r.status_code == 404 and r.json["error"]["code"] == "version_not_found"
    assert client.get(f"/v1/workflows/{made['id']}?version=x", headers=h).status_code == 422

    assert client.delete(f"/v1/workflows/{made['id']}", headers=h).status_code == 204
    assert client.get(f"/v1/workflows/{made['id']}", headers=h).status_code == 404
    assert [w["id"] for w in client.get("/v1/workflows", headers=h).json["data"]] == [other["id"]]
    services = client.application.extensions["faktry"]
    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(WorkflowVersion)) == 1


def test_names_are_unique_per_tenant_and_bodies_take_only_their_fields(client, make_tenant):
    one, two = make_tenant(), make_tenant()
    body = {"name": "same", "graph": _graph()}
    assert client.post("/v1/workflows", json=body, headers=one.headers).status_code == 201
    r = client.post("/v1/workflows", json=body, headers=one.headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "workflow_name_taken"
    assert client.post("/v1/workflows", json=body, headers=two.headers).status_code == 201
    r = client.post("/v1/workflows", json={**body, "name": "x", "colour": 1}, headers=one.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "unknown_field"
    r = client.post("/v1/workflows", json={"name": "", "graph": _graph()}, headers=one.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "name"


def test_a_refused_graph_answers_422_with_every_problem_naming_node_and_field(client, tenant):
    graph = _graph()
    graph["nodes"]["each"]["params"] = {"width": 0, "height": 64}
    graph["nodes"]["probe"]["input"] = {"file_id": {"node": "nobody", "output": 0}}
    graph["nodes"]["words"] = {
        "type": "speech.transcribe",
        "params": {"model": "local-transcribe"},
        "input": {"file_id": {"input": "photos"}},
        "map": "file_id",
    }
    r = client.post("/v1/workflows", json={"name": "bad", "graph": graph}, headers=tenant.headers)
    assert r.status_code == 422
    error = r.json["error"]
    assert error["code"] == "invalid_workflow" and "3 problems" in error["message"]
    assert sorted((p["node"], p["field"], p["code"]) for p in error["problems"]) == [
        ("each", "params.width", "invalid_request"),
        ("probe", "input.file_id", "unknown_node"),
        ("words", "input.file_id", "kind_mismatch"),
    ]
    assert client.get("/v1/workflows", headers=tenant.headers).json["data"] == []
    # A new version is checked the same way, and a refused one changes nothing.
    made = client.post("/v1/workflows", json={"name": "ok", "graph": _graph()}, headers=tenant.headers).json
    r = client.post(f"/v1/workflows/{made['id']}/versions", json={"graph": graph}, headers=tenant.headers)
    assert r.status_code == 422 and len(r.json["error"]["problems"]) == 3
    assert client.get(f"/v1/workflows/{made['id']}", headers=tenant.headers).json["version"] == 1


def test_the_quote_prices_a_graph_or_a_saved_version_for_given_inputs(client, tenant, png_image):
    h = tenant.headers
    image = upload(client, tenant, png_image).json["id"]
    inputs = {"photos": [image] * 4}
    r = client.post("/v1/workflows/quote", json={"graph": _graph(), "inputs": inputs}, headers=h)
    assert r.status_code == 200, r.json
    # Four resizes at 100, and one probe of the first output (a fan-in waits for all four).
    assert r.json["nodes"] == {
        "each": {"items": 4, "unit_price": 100, "price": 400},
        "probe": {"items": 1, "unit_price": 100, "price": 100},
    }
    assert r.json["price"] == 500 and r.json["currency"] == "millicredits"
    assert r.json["sufficient"] is True and r.json["available"] == 1000 * ledger.MILLI

    made = client.post("/v1/workflows", json={"name": "q", "graph": _graph()}, headers=h).json
    saved = client.post("/v1/workflows/quote", json={"workflow_id": made["id"], "inputs": inputs}, headers=h)
    assert saved.status_code == 200 and saved.json["price"] == 500
    versioned = {"workflow_id": made["id"], "version": 1, "inputs": {"photos": [image]}}
    assert client.post("/v1/workflows/quote", json=versioned, headers=h).json["price"] == 200

    r = client.post("/v1/workflows/quote", json={"graph": _graph(), "inputs": {}}, headers=h)
    assert r.status_code == 422 and r.json["error"]["problems"][0]["code"] == "missing_input"
    r = client.post("/v1/workflows/quote", json={"graph": _graph(), "workflow_id": made["id"]}, headers=h)
    assert r.status_code == 422
    r = client.post(
        "/v1/workflows/quote", json={"workflow_id": "wfl_" + "0" * 24, "inputs": inputs}, headers=h
    )
    assert r.status_code == 404 and r.json["error"]["code"] == "workflow_not_found"
    with transaction(client.application.extensions["faktry"].sessions) as session:
        assert ledger.check(session) == []


def test_another_tenants_workflow_answers_like_an_unknown_one(client, make_tenant, png_image):
    mine, theirs = make_tenant(), make_tenant()
    their = client.post(
        "/v1/workflows", json={"name": "secret", "graph": _graph()}, headers=theirs.headers
    ).json
    unknown = "wfl_" + "0" * 24
    image = upload(client, mine, png_image).json["id"]
    calls = [
        ("get", "/v1/workflows/{}", None),
        ("post", "/v1/workflows/{}/versions", {"graph": _graph(32)}),
        ("delete", "/v1/workflows/{}", None),
    ]
    for method, path, body in calls:
        answers = [
            getattr(client, method)(path.format(wid), json=body, headers=mine.headers)
            for wid in (their["id"], unknown)
        ]
        assert [a.status_code for a in answers] == [404, 404], (method, path)
        assert answers[0].json == answers[1].json
        assert "secret" not in answers[0].get_data(as_text=True)
    quote = {"workflow_id": their["id"], "inputs": {"photos": [image]}}
    r = client.post("/v1/workflows/quote", json=quote, headers=mine.headers)
    assert r.status_code == 404 and r.json["error"]["code"] == "workflow_not_found"
    assert client.get("/v1/workflows", headers=mine.headers).json["data"] == []
    # Theirs is untouched.
    still = client.get(f"/v1/workflows/{their['id']}", headers=theirs.headers).json
    assert still["version"] == 1 and still["graph"] == _graph()
    with transaction(client.application.extensions["faktry"].sessions) as session:
        assert session.scalar(select(func.count()).select_from(Workflow)) == 1


def test_the_templates_are_listed_and_each_saves_and_quotes(client, tenant, clip_small):
    h = tenant.headers
    r = client.get("/v1/workflow-templates", headers=h)
    assert r.status_code == 200
    by_id = {t["id"]: t for t in r.json["data"]}
    assert set(by_id) == {"web-ready-video", "podcast-clip", "product-shots"}
    video = upload(client, tenant, clip_small).json["id"]
    for template in by_id.values():
        saved = client.post(
            "/v1/workflows", json={"name": template["name"], "graph": template["graph"]}, headers=h
        )
        assert saved.status_code == 201, saved.json
        inputs = {"source": video} if template["graph"]["inputs"] else {}
        quote = client.post(
            "/v1/workflows/quote", json={"workflow_id": saved.json["id"], "inputs": inputs}, headers=h
        )
        assert quote.status_code == 200, quote.json
        assert set(quote.json["nodes"]) == set(template["graph"]["nodes"])
        assert quote.json["price"] == sum(n["price"] for n in quote.json["nodes"].values()) > 0
