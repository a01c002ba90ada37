"""Tenants never see each other. Two tenants each hold a file, a multi-file output (an HLS
ladder), a queued job and a spare API key; every route of the app's URL map that takes an id
is called by one tenant with the other's ids. Each must answer 404, exactly as it answers an
id that does not exist, must not leak a byte of the other tenant's data, and must change
nothing of theirs. The routes come from the Flask URL map, so a new route is covered without
changing this file (a new kind of id fails `_ids` until it is given values here).

Staff routes (``/v1/admin/...``) act on every tenant by design: a tenant that is not staff
gets ``403 staff_only`` there, the same for an existing id as for an unknown one. The prompt
gallery's reads are public by design: the other tenant's entry here is one staff removed,
which every reader, its owner included, is answered for like an unknown one (the caller's
own entry is published, and found).

This suite and the schemathesis suite (``test_openapi.py``) run in every ``scripts/test``
run: `test_the_cross_tenant_and_schemathesis_suites_run_in_ci` keeps it so.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from faktry.db import transaction
from pipelines import runner
from pipelines.exports import store as exports
from pipelines.gallery import store as gallery
from storage.models import File
from tests.conftest import make_settings
from tests.web.helpers import upload

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = {
    "file_id": "fil_" + "0" * 24,
    "job_id": "job_" + "0" * 24,
    "key_id": "key_" + "0" * 24,
    "tenant_id": "ten_" + "0" * 24,
    "relpath": "360p/index.m3u8",
    "workflow_id": "wfl_" + "0" * 24,
    "run_id": "run_" + "0" * 24,
    "brand_id": "brd_" + "0" * 24,
    "project_id": "prj_" + "0" * 24,
    "endpoint_id": "whe_" + "0" * 24,
    "message_id": "msg_" + "0" * 24,
    "session_id": "cs_test_" + "0" * 24,
    "entry_id": "gal_" + "0" * 24,
    "archive_id": "exp_" + "0" * 24,
    "user_id": "usr_" + "0" * 24,
    "invitation_id": "inv_" + "0" * 24,
    "upl_id": "upl_" + "0" * 24,
    "tus_id": "upl_" + "0" * 24,
}
#: Rules that take no tenant's id (a static file's name).
NOT_TENANT_DATA = {"static"}
#: Request bodies for the writes that need one to get past their shape checks.
GRAPH = {
    "inputs": {"photo": {"kind": "image"}},
    "nodes": {
        "small": {
            "type": "image.resize",
            "params": {"width": 8, "height": 8},
            "input": {"file_id": {"input": "photo"}},
        }
    },
}
BODIES = {
    "api.grant_credits": {"credits": 1, "reason": "cross-tenant test"},
    "api.add_workflow_version": {"graph": GRAPH},
    "api.redeliver_webhook_messages": {"since": "2000-01-01T00:00:00+00:00"},
    "api.change_role": {"role": "owner"},
}
#: tus requests carry the protocol's headers and raw bytes, not JSON.
TUS = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}


@dataclass
class Holdings:
    """One tenant and what it owns."""

    handle: Any
    upload_id: str = ""
    root_id: str = ""
    relpath: str = ""
    job_id: str = ""
    key_id: str = ""
    key_prefix: str = ""
    workflow_id: str = ""
    run_id: str = ""
    brand_id: str = ""
    project_id: str = ""
    endpoint_id: str = ""
    message_id: str = ""
    session_id: str = ""
    entry_id: str = ""
    archive_id: str = ""
    invitation_id: str = ""
    upl_id: str = ""
    tus_id: str = ""
    marks: set[str] = field(default_factory=set)

    def ids(self, rule: Any) -> dict[str, str]:
        """Values for ``rule``'s variables: this tenant's ids."""
        values = {
            "file_id": self.root_id if "relpath" in rule.arguments else self.upload_id,
            "relpath": self.relpath,
            "job_id": self.job_id,
            "key_id": self.key_id,
            "tenant_id": self.handle.id,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "brand_id": self.brand_id,
            "project_id": self.project_id,
            "endpoint_id": self.endpoint_id,
            "message_id": self.message_id,
            "session_id": self.session_id,
            "entry_id": self.entry_id,
            "archive_id": self.archive_id,
            "user_id": self.handle.user_id,
            "invitation_id": self.invitation_id,
            "upl_id": self.upl_id,
            "tus_id": self.tus_id,
        }
        missing = set(rule.arguments) - set(values)
        assert not missing, f"{rule.rule}: give the suite values for {sorted(missing)}"
        return {name: values[name] for name in rule.arguments}


def _seed(client: Any, runtime: Any, make_tenant: Any, png: Path, clip: Path, *, shown: bool) -> Holdings:
    """One tenant's holdings. Its gallery entry is published when ``shown`` (the public reads
    find it, as they find anyone's), else removed by staff: hidden from everyone, the
    public reads included, but still the tenant's to delete."""
    handle = make_tenant(credits=100, password=PASSWORD)
    held = Holdings(handle)
    held.upload_id = upload(client, handle, png).json["id"]
    video = upload(client, handle, clip).json["id"]
    hls = {"type": "video.transcode", "input": {"file_id": video}, "params": {"preset": "hls"}}
    job = client.post("/v1/jobs", json=hls, headers=handle.headers).json["id"]
    runner.run(runtime.context, job)
    done = client.get(f"/v1/jobs/{job}", headers=handle.headers).json
    assert done["status"] == "succeeded", done
    held.root_id = done["outputs"][0]["id"]
    with transaction(client.application.extensions["faktry"].sessions) as session:
        held.relpath = session.scalars(select(File.relpath).where(File.root_id == held.root_id)).first()
    assert held.relpath
    probe = {"type": "media.probe", "input": {"file_id": held.upload_id}}
    held.job_id = client.post("/v1/jobs", json=probe, headers=handle.headers).json["id"]  # stays queued
    key = client.post("/v1/keys", json={"name": "spare"}, headers=handle.headers).json
    held.key_id, held.key_prefix = key["id"], key["prefix"]
    saved = {"name": f"wf {handle.id}", "graph": GRAPH}
    held.workflow_id = client.post("/v1/workflows", json=saved, headers=handle.headers).json["id"]
    run = {"inputs": {"photo": held.upload_id}}  # its step's job stays queued
    held.run_id = client.post(
        f"/v1/workflows/{held.workflow_id}/runs", json=run, headers=handle.headers
    ).json["id"]
    brand = {"name": f"brand {handle.id}", "logo_file_id": held.upload_id, "mood_file_ids": [held.upload_id]}
    held.brand_id = client.post("/v1/brands", json=brand, headers=handle.headers).json["id"]
    scenes = [{"script": "Hello.", "media": {"file_id": held.upload_id}}]
    project = {"name": f"project {handle.id}", "brand_id": held.brand_id, "scenes": scenes}
    held.project_id = client.post("/v1/projects", json=project, headers=handle.headers).json["id"]
    hook = {"url": f"https://hooks.example.com/{handle.id}"}
    held.endpoint_id = client.post("/v1/webhook-endpoints", json=hook, headers=handle.headers).json["id"]
    held.message_id = client.post(
        f"/v1/webhook-endpoints/{held.endpoint_id}/test", headers=handle.headers
    ).json["id"]
    pack = client.get("/v1/billing/packs", headers=handle.headers).json["data"][0]["id"]
    checkout = client.post("/v1/billing/checkout", json={"pack": pack}, headers=handle.headers)
    assert checkout.status_code == 201, checkout.json  # test mode: faktry's own checkout
    held.session_id = checkout.json["session_id"]
    shot = {
        "type": "image.generate",
        "input": {"prompt": f"shot {handle.id}"},
        "params": {"model": "local-image"},
    }
    generated = client.post("/v1/jobs", json=shot, headers=handle.headers).json["id"]
    runner.run(runtime.context, generated)
    entry = {"job_id": generated, "category": "other", "display_name": f"name {handle.id}"}
    held.entry_id = client.post("/v1/gallery", json=entry, headers=handle.headers).json["id"]
    if not shown:
        with transaction(client.application.extensions["faktry"].sessions) as session:
            gallery.remove(session, held.entry_id, "cross-tenant test")
    held.archive_id = client.post("/v1/account/exports", headers=handle.headers).json["id"]
    invited = {"email": f"invited-{handle.id}@example.com", "role": "viewer"}
    held.invitation_id = client.post("/v1/invitations", json=invited, headers=handle.headers).json["id"]
    # Two uploads under way: one for the uploads' own routes, one for the tus routes.
    for attr, path, extra in (("upl_id", "/v1/uploads", {}), ("tus_id", "/v1/uploads/tus", TUS)):
        made = client.post(
            path, json={"filename": "later.mp4", "size": 1000} if not extra else None,
            headers={**handle.headers, **extra, "Upload-Length": "1000"},
        )  # fmt: skip
        assert made.status_code == 201, made.get_data(as_text=True)
        setattr(held, attr, made.json["id"] if not extra else made.headers["Location"].rsplit("/", 1)[-1])
    ctx = runtime.context
    policy = exports.Policy.from_settings(ctx.settings)
    assert (
        exports.build(ctx.sessions, ctx.storage, held.archive_id, policy, tmp_dir=ctx.settings.tmp_dir)
        == "ready"
    )
    files = client.get("/v1/files?limit=100", headers=handle.headers).json["data"]
    jobs = client.get("/v1/jobs?limit=100", headers=handle.headers).json["data"]
    held.marks = {
        handle.id, handle.email, handle.user_id, held.key_id, held.key_prefix, held.workflow_id, held.run_id,
        held.brand_id, held.project_id, held.endpoint_id, held.message_id, held.session_id, held.entry_id,
        held.archive_id, held.invitation_id, held.upl_id, held.tus_id, f"invited-{handle.id}@example.com",
        f"shot {handle.id}", f"name {handle.id}", *(f["id"] for f in files), *(f["sha256"] for f in files), *(j["id"] for j in jobs),
    }  # fmt: skip
    return held


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str) -> Any:
    """Payments in test mode, so that each tenant has a checkout session of its own."""
    return make_settings(tmp_path, db_url, redis_namespace, payments_test_mode=True)


@pytest.fixture
def tenants(app, client, runtime, make_tenant, png_image, clip_small) -> tuple[Holdings, Holdings]:
    return (
        _seed(client, runtime, make_tenant, png_image, clip_small, shown=True),
        _seed(client, runtime, make_tenant, png_image, clip_small, shown=False),
    )


def _url(rule: Any, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def _routes(app: Any) -> list[tuple[Any, str]]:
    """Every (rule, method) of the URL map that takes a tenant's id, reads before writes."""
    order = {"GET": 0, "PATCH": 1, "PUT": 2, "POST": 3, "DELETE": 4}
    found = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        if rule.arguments and rule.endpoint not in NOT_TENANT_DATA
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
    return sorted(found, key=lambda item: (order.get(item[1], 5), item[0].rule))


class Caller:
    """Calls as one tenant: the API with its key, the pages with its web session."""

    def __init__(self, app: Any, held: Holdings) -> None:
        self.api = app.test_client()
        self.browser = app.test_client()
        self.headers = held.handle.headers
        # A run of a saved workflow takes the caller's own file as its input.
        self.bodies = {**BODIES, "api.run_workflow": {"inputs": {"photo": held.upload_id}}}
        r = self.browser.post("/v1/session", json={"email": held.handle.email, "password": PASSWORD})
        assert r.status_code == 201, r.json
        # A page's form carries the session's CSRF token, as the page itself would.
        self.form = {"csrf": r.json["csrf_token"]}

    def call(self, rule: Any, method: str, url: str) -> Any:
        if rule.endpoint.startswith("pages."):
            form = self.form if method == "POST" else None
            return self.browser.open(url, method=method, headers={"Accept": "text/html"}, data=form)
        if rule.endpoint.startswith("api.tus_"):
            return self.api.open(url, method=method, headers={**self.headers, **TUS}, data=b"")
        return self.api.open(
            url, method=method, headers=self.headers, json=self.bodies.get(rule.endpoint, {})
        )


def _leaks(response: Any, marks: set[str], sent: set[str]) -> list[str]:
    """The other tenant's marks found in the answer (body or headers), except those sent.
    Callers pass the marks the two tenants do not share: both upload the same bytes, so the
    files' SHA-256s are the same."""
    text = response.get_data(as_text=True) + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return sorted(m for m in marks - sent if m and m in text)


def _same(a: Any, b: Any, theirs: dict[str, str], unknown: dict[str, str]) -> bool:
    """Whether two answers say the same, once the ids each was asked about are blanked (and a
    page's per-answer script nonce)."""

    def text(response: Any, ids: dict[str, str]) -> str:
        body = response.get_data(as_text=True)
        for value in sorted(ids.values(), key=len, reverse=True):
            body = body.replace(value, "<id>")
        return re.sub(r'nonce="[^"]*"', 'nonce=""', body)

    return a.status_code == b.status_code and text(a, theirs) == text(b, unknown)


def test_every_route_with_an_id_answers_another_tenants_id_like_an_unknown_one(app, tenants):
    mine, theirs = tenants
    caller = Caller(app, mine)
    assert _routes(app), "the URL map has routes with ids"
    failures = []
    for rule, method in _routes(app):
        their_ids = theirs.ids(rule)
        unknown_ids = {name: UNKNOWN[name] for name in their_ids}
        answer = caller.call(rule, method, _url(rule, their_ids))
        stranger = caller.call(rule, method, _url(rule, unknown_ids))
        expected = 403 if rule.rule.startswith("/v1/admin/") else 404
        label = f"{method} {rule.rule}"
        if answer.status_code != expected:
            failures.append(f"{label}: {answer.status_code}, not {expected}")
        if (
            expected == 403
            and (answer.get_json(silent=True) or {}).get("error", {}).get("code") != "staff_only"
        ):
            failures.append(f"{label}: not refused as staff_only")
        if not _same(answer, stranger, their_ids, unknown_ids):
            failures.append(f"{label}: answers differently than for an unknown id")
        leaked = _leaks(answer, theirs.marks - mine.marks, set(their_ids.values()))
        if leaked:
            failures.append(f"{label}: leaks {leaked}")
    assert failures == []

    # Nothing of theirs changed: the queued job, the files and the spare key are as they were.
    owner = theirs.handle.headers
    job = caller.api.get(f"/v1/jobs/{theirs.job_id}", headers=owner).json
    assert job["status"] == "queued" and not job["cancel_requested"]
    for file_id in (theirs.upload_id, theirs.root_id):
        assert caller.api.get(f"/v1/files/{file_id}", headers=owner).status_code == 200
    keys = caller.api.get("/v1/keys", headers=owner).json["data"]
    assert [k["active"] for k in keys if k["id"] == theirs.key_id] == [True]
    brand = caller.api.get(f"/v1/brands/{theirs.brand_id}", headers=owner).json
    assert brand["name"] == f"brand {theirs.handle.id}" and brand["logo_file_id"] == theirs.upload_id
    project = caller.api.get(f"/v1/projects/{theirs.project_id}", headers=owner).json
    assert project["name"] == f"project {theirs.handle.id}" and project["last_run_id"] is None

    # And each route does find the caller's own ids (so the 404s above are the tenancy's).
    for rule, method in _routes(app):
        if rule.rule.startswith("/v1/admin/"):
            continue
        r = caller.call(rule, method, _url(rule, mine.ids(rule)))
        assert r.status_code < 400 or r.status_code == 409, (method, rule.rule, r.status_code)


def test_lists_and_pages_without_ids_never_show_another_tenants_data(app, tenants):
    mine, theirs = tenants
    caller = Caller(app, mine)
    leaks = {}
    for rule in app.url_map.iter_rules():
        if rule.arguments or "GET" not in (rule.methods or set()):
            continue
        for accept in ("application/json", "text/csv"):
            if rule.endpoint.startswith("pages."):
                r = caller.browser.get(rule.rule, headers={"Accept": "text/html"})
            else:
                r = caller.api.get(rule.rule, headers={**caller.headers, "Accept": accept})
            found = _leaks(r, theirs.marks - mine.marks, set())
            if found:
                leaks[f"GET {rule.rule} ({accept})"] = found
    assert leaks == {}
    # The caller's own data is there, so the lists were really read.
    export = caller.api.get("/v1/account/export", headers=caller.headers).json
    assert {f["id"] for f in export["files"]} >= {mine.upload_id, mine.root_id}


def test_another_tenants_file_in_a_job_body_answers_like_an_unknown_file(app, tenants):
    mine, theirs = tenants
    caller = Caller(app, mine)

    def bodies(file_id: str) -> dict[str, Any]:
        job = {"type": "media.probe", "input": {"file_id": file_id}}
        brand = {"name": "b", "logo_file_id": file_id}
        project = {"name": "p", "scenes": [{"media": {"file_id": file_id}}]}
        return {
            "/v1/jobs": job,
            "/v1/jobs/quote": job,
            "/v1/jobs/batch": {"jobs": [job]},
            "/v1/brands": brand,
            "/v1/projects": project,
        }

    for path, body in bodies(theirs.upload_id).items():
        answer = caller.api.post(path, json=body, headers=caller.headers)
        stranger = caller.api.post(path, json=bodies(UNKNOWN["file_id"])[path], headers=caller.headers)
        assert answer.status_code == stranger.status_code == 422, (path, answer.status_code)
        ids = {"file_id": theirs.upload_id}
        assert _same(answer, stranger, ids, {"file_id": UNKNOWN["file_id"]}), path
        assert _leaks(answer, theirs.marks - mine.marks, set(ids.values())) == [], path


def test_the_cross_tenant_and_schemathesis_suites_run_in_ci():
    """``.ci/run`` runs ``scripts/test`` with CI=true; nothing there, in pytest's options or in
    these files deselects or skips the two suites (a missing service fails them under CI)."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in ci and "scripts/test" in ci
    command = next(line for line in (ROOT / "scripts" / "test").read_text().splitlines() if "pytest" in line)
    pyproject = (ROOT / "pyproject.toml").read_text()
    addopts = re.search(r"^addopts\s*=\s*(.*)$", pyproject, re.MULTILINE)
    options = shlex.split(command) + (shlex.split(addopts.group(1).strip("\"'")) if addopts else [])
    assert not {"-m", "-k", "--deselect", "--ignore", "--ignore-glob"} & set(options), options
    testpaths = re.search(r"^testpaths\s*=\s*\[(.*)\]$", pyproject, re.MULTILINE)
    assert testpaths and '"tests"' in testpaths.group(1)
    for suite in ("test_cross_tenant.py", "test_openapi.py"):
        source = (ROOT / "tests" / "web" / suite).read_text()
        assert not re.search(r"pytest\.(skip|importorskip)\(|mark\.skip(if)?\b", source), suite
        assert not re.search(r"^pytestmark\b", source, re.MULTILINE), suite
