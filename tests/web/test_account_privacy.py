"""The privacy promises: a person can export everything faktry keeps about them and delete
their account; what stays is pseudonymous (the ledger, by tenant id), and nothing in Redis
names them afterwards."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from faktry.db import Base, transaction
from faktry.tenancy import ApiKey, Tenant, User, UserSession
from pipelines import runner
from pipelines.admission import AdmittingSender
from pipelines.brands.models import Brand
from pipelines.catalog import default_catalog
from pipelines.projects.models import Project
from pipelines.webhooks import delivery
from pipelines.workflows.models import Workflow, WorkflowEvent, WorkflowRun, WorkflowStep, WorkflowVersion
from quotas import ledger
from quotas.limits import reserve_storage
from quotas.models import LedgerEntry, StripeEvent
from storage.models import File
from tests import services as svc
from tests.stripe_fake import StripeFake, signed_headers
from tests.web.helpers import upload

PASSWORD = "correct horse battery"
WEBHOOK_SECRET = "whsec_privacy_test_4b1d"


def login(client, person, password=PASSWORD):
    r = client.post("/v1/session", json={"email": person.email, "password": password})
    assert r.status_code == 201, r.json
    return {"X-CSRF-Token": r.json["csrf_token"]}


# -- the export ------------------------------------------------------------------------------

#: Where each table that holds a tenant's rows shows in the export (a path of keys). A new
#: table with a ``tenant_id`` fails `test_an_export_holds_every_row_faktry_keeps_about_the_account`
#: until it is exported and listed here.
EXPORTED = {
    "tenants": ("tenant",),
    "users": ("users",),
    "user_sessions": ("sessions",),
    "api_keys": ("api_keys",),
    "accounts": ("billing",),
    "credit_lots": ("credit_lots",),
    "holds": ("holds",),
    "ledger_entries": ("transactions",),
    "storage_reservations": ("storage", "reservations"),
    "files": ("files",),
    "uploads": ("uploads",),
    "jobs": ("jobs",),
    "job_events": ("job_events",),
    "job_outputs": ("jobs", "*", "outputs"),
    "moderation_log": ("moderation_log",),
    "workflows": ("workflows",),
    "workflow_versions": ("workflow_versions",),
    "workflow_runs": ("workflow_runs",),
    "workflow_steps": ("workflow_steps",),
    "workflow_events": ("workflow_events",),
    "brands": ("brands",),
    "projects": ("projects",),
    "webhook_endpoints": ("webhook_endpoints",),
    "webhook_messages": ("webhook_messages",),
    "webhook_attempts": ("webhook_messages", "*", "log"),
    "webhook_signing_keys": ("webhook_signing_keys",),
    "gallery_entries": ("gallery_entries",),
    "export_archives": ("export_archives",),
    "audit_log": ("audit_log",),
    "invitations": ("invitations",),
    "mail_messages": ("mail_messages",),
    "account_tokens": ("account_tokens",),
}


def _count_in(data: Any, path: tuple[str, ...]) -> int:
    if not path:
        return len(data) if isinstance(data, list) else 1
    if path[0] == "*":
        return sum(_count_in(item, path[1:]) for item in data)
    return _count_in(data[path[0]], path[1:])


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    fake = StripeFake().start()
    yield fake
    fake.stop()


def _buy(client, app, fake: StripeFake, tenant_id: str) -> str:
    """A paid Checkout for the tenant, delivered as Stripe's webhook; returns the customer."""
    services = app.extensions["faktry"]
    services.settings = services.settings.replace(
        stripe_secret_key=fake.secret_key, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=fake.url
    )
    session_id = fake.checkout(tenant_id)
    payload = json.dumps(fake.completed(session_id))
    r = client.post("/v1/billing/webhook", data=payload, headers=signed_headers(payload, WEBHOOK_SECRET))
    assert r.status_code == 200, r.json
    return fake.customer_of(session_id)


def test_an_export_holds_every_row_faktry_keeps_about_the_account(
    app, client, make_tenant, png_image, runtime, stripe_fake
):
    ctx = runtime.context
    person = make_tenant(credits=5, password=PASSWORD)
    other = make_tenant(credits=5, password=PASSWORD)  # whose rows must not show
    customer = _buy(client, app, stripe_fake, person.id)
    browser = app.test_client()
    browser.post(
        "/v1/session",
        json={"email": person.email, "password": PASSWORD},
        headers={"User-Agent": "PrivacyTest/1.0"},
    )
    # A mail (a password reset link) and its link's token.
    assert client.post("/v1/password-reset", json={"email": person.email}).status_code == 202
    file_id = upload(client, person, png_image).json["id"]
    upload(client, other, png_image)
    resize = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    done = client.post("/v1/jobs", json=resize, headers=person.headers).json["id"]
    runner.run(ctx, done)  # outputs, events, a capture
    queued = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=person.headers
    ).json["id"]  # a hold
    model = default_catalog().for_type("image.generate")[0].id
    flagged = {
        "type": "image.generate",
        "input": {"prompt": "a gore film poster"},
        "params": {"model": model},
    }
    client.post("/v1/jobs", json=flagged, headers=person.headers)  # a moderation log entry
    shot = {"type": "image.generate", "input": {"prompt": "a chair"}, "params": {"model": model}}
    generated = client.post("/v1/jobs", json=shot, headers=person.headers).json["id"]
    runner.run(ctx, generated)
    shown = {"job_id": generated, "category": "product", "display_name": "Pat"}
    assert (
        client.post("/v1/gallery", json=shown, headers=person.headers).status_code == 201
    )  # a gallery entry
    with transaction(ctx.sessions) as s:
        reserve_storage(s, person.id, 1000, 10**9)  # an upload on its way to storage
    graph = {"nodes": {"probe": {"type": "media.probe", "input": {"file_id": file_id}}}}
    flow = client.post("/v1/workflows", json={"name": "probe", "graph": graph}, headers=person.headers).json
    run = client.post(f"/v1/workflows/{flow['id']}/runs", json={"inputs": {}}, headers=person.headers)
    assert run.status_code == 202, run.json  # a run with a step and its events
    brand = {"name": "Acme", "logo_file_id": file_id, "voice": {"values": ["care"]}}
    assert client.post("/v1/brands", json=brand, headers=person.headers).status_code == 201
    client.post("/v1/brands", json={"name": "Other's"}, headers=other.headers)
    scenes = [{"script": "Hello.", "media": {"file_id": file_id}}]
    project = {"name": "Spring", "idea": "coffee at dawn", "scenes": scenes}
    assert client.post("/v1/projects", json=project, headers=person.headers).status_code == 201
    client.post("/v1/projects", json={"name": "Other's"}, headers=other.headers)
    hook = client.post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"}, headers=person.headers
    ).json  # an endpoint, a message, and an attempt (refused: the name resolves inside)
    sent = client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=person.headers).json
    delivery.deliver(ctx.sessions, delivery.Policy(resolve=lambda host, port: ["10.0.0.1"]), sent["id"])
    job_hook_secret = client.get("/v1/webhook-signing-key", headers=person.headers).json["secret"]
    assert client.post("/v1/account/exports", headers=person.headers).status_code == 202  # an archive
    invited = {"email": "colleague@example.com", "role": "viewer"}
    assert client.post("/v1/invitations", json=invited, headers=person.headers).status_code == 201
    later = {"filename": "later.mp4", "size": 1000}  # an upload under way
    assert client.post("/v1/uploads", json=later, headers=person.headers).status_code == 201

    r = client.get("/v1/account/export", headers=person.headers)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    data = r.json
    text = json.dumps(data)

    with transaction(ctx.sessions) as s:
        # Every table with a tenant_id: each of the person's rows is in the export.
        for table in Base.metadata.sorted_tables:
            if "tenant_id" not in table.c and table.name != "tenants":
                continue
            assert table.name in EXPORTED, f"{table.name} holds tenants' rows: add it to the export"
            column = table.c.id if table.name == "tenants" else table.c.tenant_id
            rows = s.scalar(select(func.count()).select_from(table).where(column == person.id))
            assert rows, f"the test made no {table.name} row: make one, so the export is shown to hold it"
            assert _count_in(data, EXPORTED[table.name]) == rows, table.name
        # No secret is in it: neither password nor key nor session-token hashes.
        secrets = [
            *s.scalars(select(User.password_hash).where(User.tenant_id == person.id)),
            *s.scalars(select(ApiKey.key_hash).where(ApiKey.tenant_id == person.id)),
            *s.scalars(select(UserSession.token_hash).where(UserSession.tenant_id == person.id)),
        ]
        secrets += [hook["secret"], job_hook_secret]
        assert secrets and not [secret for secret in secrets if secret and secret in text]
        payments = s.scalars(select(StripeEvent.id).where(StripeEvent.reference.is_not(None))).all()

    assert [u["email"] for u in data["users"]] == [person.email]
    assert data["tenant"]["status"] == "active"
    assert data["sessions"][0]["user_agent"] == "PrivacyTest/1.0" and "token" not in data["sessions"][0]
    assert data["workflow_versions"][0]["graph"] == graph
    assert [st["node"] for st in data["workflow_steps"]] == ["probe"]
    assert [(b["name"], b["logo_file_id"], b["voice"]["values"]) for b in data["brands"]] == [
        ("Acme", file_id, ["care"])
    ]
    assert [(p["name"], p["idea"], p["scenes"][0]["script"]) for p in data["projects"]] == [
        ("Spring", "coffee at dawn", "Hello.")
    ]
    assert all(k["prefix"] and "key_hash" not in k for k in data["api_keys"])
    assert data["billing"]["stripe_customer_id"] == customer
    assert {lot["source"] for lot in data["credit_lots"]} == {"grant", "purchase"}
    assert {p["id"] for p in data["payments"]} == set(payments)
    assert {h["job_id"] for h in data["holds"]} >= {done, queued}
    assert {e["job_id"] for e in data["job_events"]} >= {done, queued}
    assert [len(j["outputs"]) for j in data["jobs"] if j["id"] == done] == [1]
    entry = data["moderation_log"][0]
    assert entry["prompt"] == "a gore film poster" and entry["action"] == "flagged"
    assert other.id not in text and other.email not in text


def test_the_ledger_csv_holds_every_transaction_of_the_export(client, make_tenant, png_image):
    person = make_tenant(credits=5)
    file_id = upload(client, person, png_image).json["id"]
    client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=person.headers
    )
    exported = client.get("/v1/account/export", headers=person.headers).json["transactions"]
    r = client.get("/v1/account/transactions?format=csv", headers=person.headers)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert sorted(row["id"] for row in rows) == sorted(e["id"] for e in exported)
    by_id = {e["id"]: e for e in exported}
    for row in rows:
        assert {k: str(v if v is not None else "") for k, v in by_id[row["id"]].items() if k in row} == row


# -- deletion --------------------------------------------------------------------------------


def test_deleting_an_account_needs_a_session_and_the_password(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    r = client.delete("/v1/account", headers=person.headers)
    assert r.status_code == 403 and r.json["error"]["code"] == "session_required"
    csrf = login(client, person)
    r = client.delete("/v1/account", json={"password": "wrong one"}, headers=csrf)
    assert r.status_code == 403 and r.json["error"]["code"] == "wrong_password"
    r = client.delete("/v1/account", json={"password": PASSWORD, "also": 1}, headers=csrf)
    assert r.status_code == 422 and r.json["error"]["code"] == "unknown_field"
    r = client.delete("/v1/account", json=[PASSWORD], headers=csrf)
    assert r.status_code == 422
    assert client.get("/v1/account", headers=person.headers).status_code == 200  # nothing happened


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
    # A saved workflow with a run still going: its hold and its queued step's job.
    graph = {"nodes": {"probe": {"type": "media.probe", "input": {"file_id": file_id}}}}
    flow = client.post("/v1/workflows", json={"name": "probe", "graph": graph}, headers=person.headers).json
    run = client.post(f"/v1/workflows/{flow['id']}/runs", json={"inputs": {}}, headers=person.headers).json
    assert run["status"] == "running"
    assert client.post("/v1/brands", json={"name": "Acme"}, headers=person.headers).status_code == 201
    project = {"name": "Spring", "scenes": [{"script": "Hello.", "media": {"file_id": file_id}}]}
    assert client.post("/v1/projects", json=project, headers=person.headers).status_code == 201
    assert list(ctx.storage.list(f"t/{person.id}/"))
    csrf = login(client, person)
    r = client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 204
    assert client.get("/v1/account").status_code == 401  # the session ended
    assert client.get("/v1/account", headers=person.headers).status_code == 401  # keys are gone
    assert list(ctx.storage.list(f"t/{person.id}/")) == []
    with transaction(ctx.sessions) as s:
        assert s.scalars(select(User).where(User.tenant_id == person.id)).all() == []
        assert s.scalars(select(UserSession).where(UserSession.tenant_id == person.id)).all() == []
        assert s.scalars(select(ApiKey).where(ApiKey.tenant_id == person.id)).all() == []
        assert s.scalars(select(File).where(File.tenant_id == person.id)).all() == []
        assert s.get(Tenant, person.id).status == "deleted"
        for model in (Workflow, WorkflowVersion, WorkflowRun, WorkflowStep, WorkflowEvent, Brand, Project):
            assert s.scalar(select(func.count()).select_from(model).where(model.tenant_id == person.id)) == 0
        entries = s.scalars(select(LedgerEntry).where(LedgerEntry.tenant_id == person.id)).all()
        assert {"grant", "hold", "capture", "release", "adjustment"} <= {e.kind for e in entries}
        assert ledger.check(s, person.id) == []
        funds = ledger.balance(s, person.id)
        assert (funds.available, funds.held) == (0, 0)
    assert queued["status"] == "queued"
    # The email is free again: a new account can be made with it, and logged in to.
    r = client.post("/v1/signup", json={"email": person.email, "password": PASSWORD, "confirm_age_16": True})
    assert r.status_code in (201, 202)
    login(client, person)


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


# -- Redis -----------------------------------------------------------------------------------


def _everything_in(client: redis.Redis, namespace: str) -> dict[str, list[str]]:
    """Every key of the namespace with what it holds, as text: members, fields and values."""
    found: dict[str, list[str]] = {}
    for raw in client.scan_iter(match=f"{namespace}:*", count=1000):
        name = raw.decode()
        kind = client.type(raw).decode()
        if kind == "string":
            items = [client.get(raw) or b""]
        elif kind == "hash":
            items = [x for pair in client.hgetall(raw).items() for x in pair]
        elif kind == "set":
            items = list(client.smembers(raw))
        elif kind == "zset":
            items = list(client.zrange(raw, 0, -1))
        elif kind == "list":
            items = list(client.lrange(raw, 0, -1))
        else:
            items = []
        found[name] = [i.decode(errors="replace") for i in items]
    return found


def _naming(found: dict[str, list[str]], marks: set[str], job_ids: set[str]) -> list[str]:
    """Keys whose name or contents hold one of ``marks``, or a job id. A Dramatiq message
    body (in ``<queue>.msgs``) may still carry a deleted job's id until a worker takes it and
    finds no job: those bodies are left out of the job-id check."""
    bad = []
    for name, items in found.items():
        held = marks if name.endswith(".msgs") else marks | job_ids
        if any(m in name for m in marks | job_ids) or any(m in item for item in items for m in held):
            bad.append(name)
    return bad


def test_deleting_an_account_leaves_no_redis_key_that_names_the_person(
    client, make_tenant, png_image, runtime, settings
):
    """The person logs in (and mistypes), uses API keys (and a wrong one), submits jobs that
    go through fair admission until the free tier's cap of one running job holds them back:
    Redis then holds keys named by their email, tenant, keys and jobs, and their tenant inside
    admission's shared structures. After the deletion nothing in the namespace names them,
    and a bystander's traces are untouched."""
    from workers.broker import make_sender

    ctx = runtime.context
    services = client.application.extensions["faktry"]
    sender = make_sender(settings, runtime.broker, svc.REDIS_URL, ctx.sessions)
    assert isinstance(sender, AdmittingSender)
    services.sender = sender
    person = make_tenant(credits=50, password=PASSWORD)
    bystander = make_tenant(credits=50, password=PASSWORD)

    for attempt in ("wrong password 1", "wrong password 2"):
        client.post("/v1/session", json={"email": person.email, "password": attempt})
    spare = client.post("/v1/keys", json={"name": "spare"}, headers=person.headers).json
    assert client.get("/v1/account", headers={"Authorization": f"Bearer {spare['key']}"}).status_code == 200
    wrong = spare["prefix"] + "x" * (len(spare["key"]) - len(spare["prefix"]))
    assert client.get("/v1/account", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    jobs: dict[str, list[str]] = {}
    for who in (person, bystander):
        file_id = upload(client, who, png_image).json["id"]
        body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
        first = client.post("/v1/jobs", json=body, headers=who.headers).json["id"]
        # A worker takes the first job: it holds the tenant's one running slot.
        claim = runner.claim(ctx, first)
        assert claim is not None and ctx.slots.acquire(who.id, first, limit=1, ttl_seconds=600)
        more = [client.post("/v1/jobs", json=body, headers=who.headers).json["id"] for _ in range(3)]
        jobs[who.id] = [first, *more]
        if who is person:
            runner._finish(ctx, claim, "canceled", code=None, message=None)
    user_ids = {person.user_id}
    with transaction(ctx.sessions) as s:
        key_rows = s.execute(select(ApiKey.id, ApiKey.prefix).where(ApiKey.tenant_id == person.id)).all()
    marks = {person.email, person.id, *user_ids, *(k for k, _ in key_rows), *(p for _, p in key_rows)}
    job_ids = set(jobs[person.id])

    r = redis.Redis.from_url(svc.REDIS_URL)
    try:
        ns = settings.redis_namespace
        before = _everything_in(r, ns)
        named = _naming(before, marks, job_ids)
        # The traces the deletion must remove are really there.
        assert f"{ns}:ratelimit:login:{person.email}" in named
        assert f"{ns}:ratelimit:submit:{person.id}" in named
        assert f"{ns}:running:{person.id}" in named
        assert any(":apikeys:verified:" in name for name in named)
        assert any(name.endswith(":capped") for name in named)  # the cap holds the person back
        assert any(f":t:{person.id}" in name for name in named)  # their waiting list
        # The API call budget's bucket expires as soon as it is full again (a few ms at the
        # default budget), so whether the bystander's is still there is a matter of timing.
        bystanders = [
            n for n in _naming(before, {bystander.id}, set(jobs[bystander.id])) if ":ratelimit:api:" not in n
        ]

        csrf = login(client, person)
        assert client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf).status_code == 204

        after = _everything_in(r, ns)
        assert _naming(after, marks, job_ids) == []
        left = [
            n for n in _naming(after, {bystander.id}, set(jobs[bystander.id])) if ":ratelimit:api:" not in n
        ]
        assert sorted(left) == sorted(bystanders)
    finally:
        r.close()


def test_while_redis_is_away_a_deletion_answers_503_and_deletes_nothing(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    csrf = login(client, person)
    services = client.application.extensions["faktry"]
    reachable = services.redis
    services.redis = redis.Redis.from_url(
        f"redis://127.0.0.1:{svc.free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    try:
        r = client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf)
        assert r.status_code == 503 and r.json["error"]["code"] == "service_unavailable"
        assert client.get("/v1/account", headers=person.headers).status_code == 200
    finally:
        services.redis.close()
        services.redis = reachable
    # Asked again once Redis is back, it is deleted.
    assert client.delete("/v1/account", json={"password": PASSWORD}, headers=csrf).status_code == 204
    assert client.get("/v1/account", headers=person.headers).status_code == 401
