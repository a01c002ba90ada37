"""Restriction of processing (the privacy policy's right to restrict): a person freezes the
account from a web session; no new job, batch, workflow run or render starts and no credit is
taken; nothing is deleted, everything stays readable and exportable; lifting it restores all."""

from __future__ import annotations

from tests.web.helpers import upload

PASSWORD = "correct horse battery"
PROBE = "media.probe"


def log_in(client, person):
    r = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    assert r.status_code == 201, r.json
    return {"X-CSRF-Token": r.json["csrf_token"]}


def restrict(client, csrf, restricted):
    r = client.put("/v1/account/restriction", json={"restricted": restricted}, headers=csrf)
    assert r.status_code == 200, r.json
    return r.json


def credits(client, person):
    body = client.get("/v1/account", headers=person.headers).json["credits"]
    return body["available"], body["held"]


def test_a_restricted_account_starts_no_job_or_batch_and_takes_no_credits(app, make_tenant, png_image):
    person = make_tenant(password=PASSWORD, credits=5)
    browser = app.test_client()
    csrf = log_in(browser, person)
    api = app.test_client()
    file_id = upload(api, person, png_image).json["id"]
    job = {"type": PROBE, "input": {"file_id": file_id}}
    before = credits(api, person)

    state = restrict(browser, csrf, True)
    assert state["restricted"] is True and state["restricted_at"]
    single = api.post("/v1/jobs", json=job, headers=person.headers)
    assert single.status_code == 409 and single.json["error"]["code"] == "account_restricted"
    batch = api.post("/v1/jobs/batch", json={"jobs": [job, job]}, headers=person.headers)
    assert batch.status_code == 409 and batch.json["error"]["code"] == "account_restricted"
    # A browser submit is refused the same way.
    from_page = browser.post("/v1/jobs", json=job, headers=csrf)
    assert from_page.status_code == 409 and from_page.json["error"]["code"] == "account_restricted"
    assert credits(api, person) == before
    assert api.get("/v1/jobs", headers=person.headers).json["data"] == []

    # The account says so; a quote (nothing runs) still answers.
    account = api.get("/v1/account", headers=person.headers).json
    assert account["restriction"]["restricted"] is True
    assert account["restriction"]["restricted_at"] == state["restricted_at"]
    assert api.post("/v1/jobs/quote", json=job, headers=person.headers).status_code == 200

    state = restrict(browser, csrf, False)
    assert state["restricted"] is False and state["restricted_at"] is None
    again = api.post("/v1/jobs", json=job, headers=person.headers)
    assert again.status_code == 202, again.json
    assert api.get("/v1/account", headers=person.headers).json["restriction"]["restricted"] is False


def test_restricting_deletes_nothing_and_the_data_stays_readable_and_exportable(app, make_tenant, png_image):
    person = make_tenant(password=PASSWORD, credits=5)
    other = make_tenant(password=PASSWORD, credits=5)
    browser = app.test_client()
    csrf = log_in(browser, person)
    api = app.test_client()
    file_id = upload(api, person, png_image).json["id"]
    job = api.post("/v1/jobs", json={"type": PROBE, "input": {"file_id": file_id}}, headers=person.headers)
    assert job.status_code == 202
    before = api.get("/v1/account/export", headers=person.headers).json

    state = restrict(browser, csrf, True)
    # Work accepted before the restriction is counted: it finishes unless canceled.
    assert state["unfinished_jobs"] == 1 and state["running_workflow_runs"] == 0
    assert api.get(f"/v1/files/{file_id}", headers=person.headers).status_code == 200
    assert api.get(f"/v1/jobs/{job.json['id']}", headers=person.headers).status_code == 200
    exported = api.get("/v1/account/export", headers=person.headers)
    assert exported.status_code == 200
    data = exported.json
    assert data["tenant"]["restricted"] is True and data["tenant"]["restricted_at"] == state["restricted_at"]
    for part in ("files", "jobs", "job_events", "credit_lots", "transactions", "users", "api_keys"):
        assert data[part] == before[part], part
    # Another tenant is not restricted.
    probe = {"type": PROBE, "input": {"file_id": upload(api, other, png_image).json["id"]}}
    assert api.post("/v1/jobs", json=probe, headers=other.headers).status_code == 202

    restrict(browser, csrf, False)
    after = api.get("/v1/account/export", headers=person.headers).json
    assert after["tenant"]["restricted"] is False and after["tenant"]["restricted_at"] is None
    for part in ("files", "jobs", "credit_lots", "transactions", "users", "api_keys"):
        assert after[part] == before[part], part


def test_restricting_twice_keeps_the_first_time_and_lifting_twice_is_harmless(app, make_tenant):
    person = make_tenant(password=PASSWORD)
    browser = app.test_client()
    csrf = log_in(browser, person)
    first = restrict(browser, csrf, True)
    assert restrict(browser, csrf, True)["restricted_at"] == first["restricted_at"]
    assert restrict(browser, csrf, False)["restricted"] is False
    assert restrict(browser, csrf, False)["restricted"] is False


def test_only_the_person_in_a_web_session_restricts_or_lifts(app, make_tenant):
    person = make_tenant(password=PASSWORD)
    api = app.test_client()
    by_key = api.put("/v1/account/restriction", json={"restricted": True}, headers=person.headers)
    assert by_key.status_code == 403 and by_key.json["error"]["code"] == "session_required"
    browser = app.test_client()
    csrf = log_in(browser, person)
    no_token = browser.put("/v1/account/restriction", json={"restricted": True})
    assert no_token.status_code == 403
    for body in ({"restricted": "yes"}, {}, {"restricted": True, "why": "x"}):
        r = browser.put("/v1/account/restriction", json=body, headers=csrf)
        assert r.status_code == 422, body
    assert api.get("/v1/account", headers=person.headers).json["restriction"]["restricted"] is False


def test_a_restricted_account_can_still_be_deleted(app, make_tenant):
    person = make_tenant(password=PASSWORD)
    browser = app.test_client()
    csrf = log_in(browser, person)
    restrict(browser, csrf, True)
    r = browser.delete("/v1/account", json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 204


def test_a_restricted_account_starts_no_workflow_run_or_render(app, make_tenant, png_image):
    person = make_tenant(password=PASSWORD, credits=5)
    browser = app.test_client()
    csrf = log_in(browser, person)
    api = app.test_client()
    file_id = upload(api, person, png_image).json["id"]
    graph = {"nodes": {"probe": {"type": PROBE, "input": {"file_id": file_id}}}}
    flow = api.post("/v1/workflows", json={"name": "probe", "graph": graph}, headers=person.headers).json
    project = {"name": "Spring", "scenes": [{"script": "Hello.", "media": {"file_id": file_id}}]}
    made = api.post("/v1/projects", json=project, headers=person.headers).json
    before = credits(api, person)
    restrict(browser, csrf, True)
    for path, body in (
        (f"/v1/workflows/{flow['id']}/runs", {"inputs": {}}),
        ("/v1/workflow-runs", {"graph": graph}),
        (f"/v1/projects/{made['id']}/render", {}),
    ):
        r = api.post(path, json=body, headers=person.headers)
        assert r.status_code == 409 and r.json["error"]["code"] == "account_restricted", path
    assert credits(api, person) == before
