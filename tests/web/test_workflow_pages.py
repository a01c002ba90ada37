"""The workflow pages, as HTTP: each answers its owner and is a 404 page for everyone else,
exactly like something that does not exist; the run page carries the graph it ran as data no
browser executes. What the pages do in a browser is in tests/browser/test_workflow_pages.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from faktry.db import transaction
from quotas import ledger

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}
# A prompt that would close the <script> element it sits in, were it put there as it is.
SNEAKY = "a red chair</script><script>alert(1)</script>"
GRAPH = {
    "inputs": {},
    "nodes": {
        "shot": {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": SNEAKY}},
        "small": {
            "type": "image.resize",
            "params": {"width": 32, "height": 32},
            "input": {"file_id": {"node": "shot", "output": 0}},
        },
    },
}


def log_in(client: Any, handle: Any) -> None:
    r = client.post("/v1/session", json={"email": handle.email, "password": PASSWORD})
    assert r.status_code == 201


def log_out(client: Any) -> None:
    token = client.get("/v1/session").json["csrf_token"]
    assert client.delete("/v1/session", headers={"X-CSRF-Token": token}).status_code == 204


@pytest.fixture
def owned(client: Any, make_tenant: Any, app: Any) -> Iterator[dict[str, Any]]:
    """A person with a saved workflow (two versions) and a run of it (holding its quote: the
    ledger is checked after each test)."""
    owner = make_tenant("creator", password=PASSWORD)
    made = client.post("/v1/workflows", json={"name": "shots", "graph": GRAPH}, headers=owner.headers)
    assert made.status_code == 201, made.json
    wid = made.json["id"]
    assert (
        client.post(f"/v1/workflows/{wid}/versions", json={"graph": GRAPH}, headers=owner.headers).status_code
        == 201
    )
    run = client.post(f"/v1/workflows/{wid}/runs", json={"inputs": {}}, headers=owner.headers)
    assert run.status_code == 202, run.json
    yield {"owner": owner, "workflow_id": wid, "run_id": run.json["id"]}
    with transaction(app.extensions["faktry"].sessions) as session:
        assert ledger.check(session) == []


def _pages(owned: dict[str, Any]) -> list[str]:
    wid, rid = owned["workflow_id"], owned["run_id"]
    return ["/workflows", "/workflows/new", "/workflows/new?template=product-shots",
            f"/workflows/{wid}", f"/workflows/{wid}?version=1", f"/workflow-runs/{rid}"]  # fmt: skip


def test_each_workflow_page_answers_its_owner_with_the_navigation_and_csrf_token(client, owned):
    log_in(client, owned["owner"])
    token = client.get("/v1/session").json["csrf_token"]
    for path in _pages(owned):
        r = client.get(path, headers=HTML)
        assert r.status_code == 200, path
        page = r.get_data(as_text=True)
        assert f'<meta name="csrf-token" content="{token}">' in page
        assert re.search(r'href="/workflows" aria-current="page"', page), path
        assert owned["owner"].key not in page
    editor = client.get(f"/workflows/{owned['workflow_id']}?version=1", headers=HTML).get_data(as_text=True)
    assert f'data-workflow-id="{owned["workflow_id"]}"' in editor and 'data-version="1"' in editor
    run_page = client.get(f"/workflow-runs/{owned['run_id']}", headers=HTML).get_data(as_text=True)
    assert 'href="/workflows/' + owned["workflow_id"] + '">shots</a>' in run_page
    # Every other page links to the workflows too.
    assert 'href="/workflows"' in client.get("/jobs", headers=HTML).get_data(as_text=True)


def test_a_workflow_or_run_of_another_tenant_is_a_not_found_page(client, owned, make_tenant):
    wid, rid = owned["workflow_id"], owned["run_id"]
    log_in(client, make_tenant(password=PASSWORD))
    for path in (f"/workflows/{wid}", f"/workflow-runs/{rid}", "/workflows/wfl_nope", "/workflow-runs/run_nope",
                 f"/workflows/{rid}", f"/workflow-runs/{wid}"):  # fmt: skip
        r = client.get(path, headers=HTML)
        assert r.status_code == 404, path
        body = r.get_data(as_text=True)
        assert "There is no such" in body
        assert "shots" not in body and SNEAKY not in body and "a red chair" not in body
    # Their own list and editor still answer.
    assert client.get("/workflows", headers=HTML).status_code == 200
    assert client.get("/workflows/new", headers=HTML).status_code == 200


def test_the_workflow_pages_send_people_without_a_session_to_log_in(client, owned):
    for path in _pages(owned):
        r = client.get(path, headers=HTML)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=/workflow"), path


def test_the_run_page_holds_the_graph_it_ran_as_data_that_cannot_close_its_element(client, owned):
    log_in(client, owned["owner"])
    r = client.get(f"/workflow-runs/{owned['run_id']}", headers=HTML)
    page = r.get_data(as_text=True)
    assert SNEAKY not in page and "<script>alert" not in page
    raw = re.search(r'<script type="application/json" id="run-graph">(.*?)</script>', page, re.S).group(1)
    assert json.loads(raw) == GRAPH
    policy = r.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    for tag in re.findall(r"<script[^>]*>", page):
        assert f'nonce="{nonce}"' in tag or 'type="application/json"' in tag
