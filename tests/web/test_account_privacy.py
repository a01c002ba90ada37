"""The privacy promises: a person can export their data and delete their account; what
stays is pseudonymous (the ledger, by tenant id)."""

from __future__ import annotations

from sqlalchemy import select

from faktry.db import transaction
from faktry.tenancy import ApiKey, Tenant, User
from pipelines import runner
from quotas import ledger
from quotas.models import LedgerEntry
from storage.models import File
from tests.web.helpers import upload

PASSWORD = "correct horse battery"


def login(client, person):
    r = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    assert r.status_code == 201
    return {"X-CSRF-Token": r.json["csrf_token"]}


def test_an_export_holds_the_profile_keys_files_jobs_and_transactions(client, make_tenant, png_image):
    person = make_tenant(credits=5, password=PASSWORD)
    file_id = upload(client, person, png_image).json["id"]
    client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=person.headers
    )
    r = client.get("/v1/account/export", headers=person.headers)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    data = r.json
    assert [u["email"] for u in data["users"]] == [person.email]
    assert [f["id"] for f in data["files"]] == [file_id]
    assert len(data["jobs"]) == 1 and data["jobs"][0]["type"] == "media.probe"
    assert sorted(t["kind"] for t in data["transactions"]) == ["grant", "hold"]
    assert all("key_hash" not in k and k["prefix"] for k in data["api_keys"])


def test_deleting_an_account_needs_a_session_and_the_password(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    r = client.delete("/v1/account", headers=person.headers)
    assert r.status_code == 403 and r.json["error"]["code"] == "session_required"
    csrf = login(client, person)
    r = client.delete("/v1/account", json={"password": "wrong one"}, headers=csrf)
    assert r.status_code == 403 and r.json["error"]["code"] == "password_required"


def test_deleting_an_account_removes_people_keys_files_and_jobs_and_keeps_a_clean_pseudonymous_ledger(
    client, make_tenant, png_image, runtime, settings
):
    ctx = runtime.context
    person = make_tenant(credits=5, password=PASSWORD)
    file_id = upload(client, person, png_image).json["id"]
    job = client.post(
        "/v1/jobs", json={"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}},
        headers=person.headers,
    ).json  # fmt: skip
    runner.run(ctx, job["id"])
    queued = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=person.headers
    ).json
    assert list(ctx.storage.list(f"t/{person.id}/"))
    csrf = login(client, person)
    r = client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 204
    assert client.get("/v1/account").status_code == 401  # the session ended
    assert client.get("/v1/account", headers=person.headers).status_code == 401  # keys are gone
    assert list(ctx.storage.list(f"t/{person.id}/")) == []
    with transaction(ctx.sessions) as s:
        assert s.scalars(select(User).where(User.tenant_id == person.id)).all() == []
        assert s.scalars(select(ApiKey).where(ApiKey.tenant_id == person.id)).all() == []
        assert s.scalars(select(File).where(File.tenant_id == person.id)).all() == []
        assert s.get(Tenant, person.id).status == "deleted"
        entries = s.scalars(select(LedgerEntry).where(LedgerEntry.tenant_id == person.id)).all()
        assert {"grant", "hold", "capture", "release", "adjustment"} <= {e.kind for e in entries}
        assert ledger.check(s, person.id) == []
        funds = ledger.balance(s, person.id)
        assert (funds.available, funds.held) == (0, 0)
    assert queued["status"] == "queued"
    # The email is free again.
    assert (
        client.post(
            "/v1/signup", json={"email": person.email, "password": PASSWORD, "confirm_age_16": True}
        ).status_code
        == 201
    )


def test_an_account_with_a_running_job_is_deleted_once_the_job_stopped(
    client, make_tenant, png_image, runtime
):
    ctx = runtime.context
    person = make_tenant(credits=5, password=PASSWORD)
    file_id = upload(client, person, png_image).json["id"]
    job = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=person.headers
    ).json
    claim = runner.claim(ctx, job["id"])  # a worker has it
    csrf = login(client, person)
    r = client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 409 and r.json["error"]["code"] == "jobs_running"
    runner._finish(ctx, claim, "canceled", code=None, message=None)  # the worker noticed and stopped
    assert client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf).status_code == 204
