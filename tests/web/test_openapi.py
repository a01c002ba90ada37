"""``/v1/openapi.json``: a valid OpenAPI 3.1 document that covers every route, and an API that
answers as it says. Schemathesis generates requests (valid and invalid) from the served
document and runs them in-process against the WSGI app; every response must have a
documented status, media type, headers and body, no request may cause a 500, and no
operation may answer without credentials.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from faktry.db import transaction
from pipelines import runner
from pipelines.catalog import default_catalog
from pipelines.exports import store as exports
from pipelines.jobtypes import JOB_TYPES
from storage.models import File
from tests.stripe_fake import StripeFake, event, signed_headers
from tests.web.helpers import upload
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
# A tus PATCH's body is raw bytes of the protocol's own media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
# Every operation, read from the document: a documented route is fuzzed without more ado.
OPERATIONS = [
    (method.upper(), path)
    for path, item in build()["paths"].items()
    for method in item
    if method in HTTP_METHODS
]
# Operations on files and jobs get uploads and a job; those that read what jobs leave behind
# get finished jobs and their outputs too.
NEEDS_MEDIA = re.compile(r"^\w+ /v1/(files|jobs)")
NEEDS_FINISHED_JOBS = re.compile(r"^(GET|DELETE) /v1/(files|jobs)|^POST /v1/jobs/\{job_id\}/cancel")
NEEDS_STRIPE = re.compile(r"^\w+ /v1/billing/")
NEEDS_STAFF = re.compile(r"^\w+ /v1/admin/")
NEEDS_WORKFLOWS = re.compile(r"^\w+ /v1/workflow")
NEEDS_BRANDS = re.compile(r"^\w+ /v1/brands")
NEEDS_PROJECTS = re.compile(r"^\w+ /v1/projects")
NEEDS_WEBHOOKS = re.compile(r"^\w+ /v1/webhook-(endpoints|messages)")
NEEDS_GALLERY = re.compile(r"^\w+ /v1/(admin/)?gallery")
NEEDS_EXPORTS = re.compile(r"^\w+ /v1/account/exports/")
NEEDS_INVITATIONS = re.compile(r"^\w+ /v1/invitations/")
NEEDS_UPLOADS = re.compile(r"^\w+ /v1/uploads/(tus/)?\{")
WEBHOOK_SECRET = "whsec_openapi_test_0d9c8b7a"
#: A valid workflow graph, so that generated requests reach more than 422s.
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


def test_a_job_submission_is_one_of_the_job_types_with_their_own_input_and_params_schemas():
    schemas = build()["components"]["schemas"]
    submission = schemas["JobSubmission"]
    by_type = {}
    for ref in submission["discriminator"]["mapping"].values():
        variant = schemas[ref.rsplit("/", 1)[-1]]
        by_type[variant["properties"]["type"]["const"]] = variant
    assert set(by_type) == set(JOB_TYPES)
    assert len(submission["oneOf"]) == len(JOB_TYPES)
    for name, job_type in JOB_TYPES.items():
        variant = by_type[name]["properties"]
        assert variant["input"] == job_type.inputs
        if job_type.generative:
            models = default_catalog().for_type(name)
            assert variant["params"]["oneOf"] == [model.params_schema for model in models]
        else:
            assert variant["params"] == job_type.params_schema
        assert ("params" in by_type[name].get("required", [])) == bool(job_type.params_schema.get("required"))


def test_a_job_type_over_one_file_takes_a_url_in_its_place_in_the_document():
    schemas = build()["components"]["schemas"]
    mapping = schemas["JobSubmission"]["discriminator"]["mapping"]

    def input_of(job_type: str) -> dict[str, Any]:
        return dict(schemas[mapping[job_type].rsplit("/", 1)[-1]]["properties"]["input"])

    resize = input_of("image.resize")
    assert resize["properties"]["url"]["maxLength"] == 2048
    assert resize["anyOf"] == [{"required": ["file_id"]}, {"required": ["url"]}]
    assert resize["not"] == {"required": ["file_id", "url"]}
    concat = input_of("video.concat")
    assert "url" not in concat["properties"]  # a list of files has no URL form


def test_the_document_is_built_once():
    assert build() is build()


# -- the API answers as documented -------------------------------------------------------------


class Seeds:
    """Real resources of the tenant, so that generated requests reach more than 404s and 422s:
    uploads, queued and finished jobs with their outputs (an HLS ladder among them), a spare
    API key, and a user who can log in."""

    def __init__(
        self, app: Any, client: Any, tenant: Any, make_tenant: Callable[..., Any], png: Path
    ) -> None:
        self.app, self.client, self.tenant = app, client, tenant
        self.headers = tenant.headers  # whom the generated requests authenticate as
        self.png_bytes = png.read_bytes()
        self.file_ids: list[str] = []
        self.job_ids: list[str] = []
        self.members: list[tuple[str, str]] = []  # (root id, relpath) in multi-file outputs
        self.deliveries: list[tuple[dict[str, Any], dict[str, str]]] = []  # signed webhook bodies
        self.workflow_ids: list[str] = []
        self.run_ids: list[str] = []
        self.workflow_inputs: dict[str, Any] = {}
        self.brand_ids: list[str] = []
        self.image_ids: list[str] = []
        self.project_ids: list[str] = []
        self.endpoint_ids: list[str] = []
        self.message_ids: list[str] = []
        self.entry_ids: list[str] = []
        self.archive_ids: list[str] = []
        self.invitation_ids: list[str] = []
        self.upload_ids: list[str] = []
        key = client.post("/v1/keys", headers=tenant.headers, json={"name": "spare"})
        assert key.status_code == 201, key.json
        self.key_id = str(key.json["id"])
        user = make_tenant(password=PASSWORD)
        self.login = {"email": user.email, "password": PASSWORD}

    def upload(self, path: Path) -> str:
        r = upload(self.client, self.tenant, path)
        assert r.status_code == 201, r.json
        self.file_ids.append(r.json["id"])
        return str(r.json["id"])

    def submit(self, body: dict[str, Any]) -> str:
        r = self.client.post("/v1/jobs", headers=self.tenant.headers, json=body)
        assert r.status_code == 202, r.json
        self.job_ids.append(r.json["id"])
        return str(r.json["id"])

    def run_jobs(self, runtime: Any, image_id: str, video_id: str) -> None:
        """Resize, thumbnail and HLS jobs run to the end (run here, as the job actor runs them);
        one more job stays queued."""
        finished = [
            self.submit(
                {"type": "image.resize", "input": {"file_id": image_id}, "params": {"width": 8, "height": 8}}
            ),
            self.submit(
                {"type": "video.thumbnail", "input": {"file_id": video_id}, "params": {"sprite": True}}
            ),
            self.submit(
                {"type": "video.transcode", "input": {"file_id": video_id}, "params": {"preset": "hls"}}
            ),
        ]
        for job_id in finished:
            runner.run(runtime.context, job_id)
            done = self.client.get(f"/v1/jobs/{job_id}", headers=self.tenant.headers).json
            assert done["status"] == "succeeded", done
            self.file_ids += [out["id"] for out in done["outputs"]]
        self.submit({"type": "media.probe", "input": {"file_id": video_id}})
        with transaction(self.app.extensions["faktry"].sessions) as session:
            rows = session.execute(
                select(File.id, File.root_id, File.relpath).where(File.root_id.in_(self.file_ids))
            )
            for member_id, root_id, relpath in rows:
                self.file_ids.append(member_id)
                self.members.append((root_id, relpath))

    def save_workflows(self, png: Path) -> None:
        """Two saved workflows (one with a second version) over an uploaded image."""
        self.workflow_inputs = {"photo": self.upload(png)}
        for name in ("first", "second"):
            r = self.client.post(
                "/v1/workflows", headers=self.tenant.headers, json={"name": name, "graph": GRAPH}
            )
            assert r.status_code == 201, r.json
            self.workflow_ids.append(str(r.json["id"]))
        again = self.client.post(
            f"/v1/workflows/{self.workflow_ids[0]}/versions",
            headers=self.tenant.headers,
            json={"graph": GRAPH},
        )
        assert again.status_code == 201, again.json
        # A run of each (they stay queued: no worker), to read, cancel and retry.
        for workflow_id in self.workflow_ids:
            run = self.client.post(
                f"/v1/workflows/{workflow_id}/runs",
                headers=self.tenant.headers,
                json={"inputs": self.workflow_inputs},
            )
            assert run.status_code == 202, run.json
            self.run_ids.append(str(run.json["id"]))

    def make_brands(self, png: Path) -> None:
        """Two brands, one with a logo and mood images from the library."""
        self.image_ids = [self.upload(png), self.upload(png)]
        bodies = [
            {"name": "first", "logo_file_id": self.image_ids[0], "mood_file_ids": self.image_ids,
             "colors": {"primary": "#102030"}, "personas": [{"name": "Pat"}]},
            {"name": "second"},
        ]  # fmt: skip
        for body in bodies:
            r = self.client.post("/v1/brands", headers=self.tenant.headers, json=body)
            assert r.status_code == 201, r.json
            self.brand_ids.append(str(r.json["id"]))

    def make_projects(self, png: Path) -> None:
        """Two projects: one that renders (a library still, a generated one, narration, a brand),
        one without scenes yet."""
        self.make_brands(png)
        scenes = [
            {"script": "Hello.", "media": {"file_id": self.image_ids[0]}},
            {"media": {"prompt": "a harbour at dawn", "kind": "image"}, "transition": {"type": "fade"}},
        ]
        bodies = [{"name": "first", "brand_id": self.brand_ids[0], "scenes": scenes}, {"name": "second"}]
        for body in bodies:
            r = self.client.post("/v1/projects", headers=self.tenant.headers, json=body)
            assert r.status_code == 201, r.json
            self.project_ids.append(str(r.json["id"]))

    def make_webhooks(self) -> None:
        """A webhook endpoint (never called here) with one test message in its log."""
        r = self.client.post(
            "/v1/webhook-endpoints", headers=self.tenant.headers, json={"url": "https://hooks.example.com/in"}
        )
        assert r.status_code == 201, r.json
        self.endpoint_ids.append(str(r.json["id"]))
        sent = self.client.post(f"/v1/webhook-endpoints/{r.json['id']}/test", headers=self.tenant.headers)
        assert sent.status_code == 202, sent.json
        self.message_ids.append(str(sent.json["id"]))

    def make_gallery(self, runtime: Any) -> None:
        """Two published gallery entries, and a succeeded generation job not yet published."""
        for prompt in ("a red chair", "a blue vase", "a green lamp"):
            job_id = self.submit(
                {"type": "image.generate", "input": {"prompt": prompt}, "params": {"model": "local-image"}}
            )
            runner.run(runtime.context, job_id)
        for job_id in self.job_ids[-3:-1]:
            body = {"job_id": job_id, "category": "product", "display_name": "Pat"}
            r = self.client.post("/v1/gallery", headers=self.tenant.headers, json=body)
            assert r.status_code == 201, r.json
            self.entry_ids.append(str(r.json["id"]))

    def make_exports(self, runtime: Any) -> None:
        """An export archive built, and one asked for after it (queued)."""
        ctx = runtime.context
        policy = exports.Policy.from_settings(ctx.settings)
        for built in (True, False):
            r = self.client.post("/v1/account/exports", headers=self.tenant.headers)
            assert r.status_code == 202, r.json
            self.archive_ids.append(str(r.json["id"]))
            if built:
                outcome = exports.build(
                    ctx.sessions, ctx.storage, r.json["id"], policy, tmp_dir=ctx.settings.tmp_dir
                )
                assert outcome == "ready"

    def make_uploads(self) -> None:
        """Two uploads under way (tus, on the test's local storage), some bytes of one sent."""
        for _ in range(2):
            r = self.client.post(
                "/v1/uploads", headers=self.tenant.headers, json={"filename": "a.png", "size": 1000}
            )
            assert r.status_code == 201, r.json
            self.upload_ids.append(str(r.json["id"]))
        sent = self.client.patch(
            f"/v1/uploads/tus/{self.upload_ids[0]}",
            data=self.png_bytes[:100],
            headers={
                **self.tenant.headers, "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )  # fmt: skip
        assert sent.status_code == 204, sent.get_data(as_text=True)

    def use_stripe(self, fake: StripeFake) -> None:
        """Billing talks to the Stripe stand-in; signed webhook deliveries are ready to send."""
        services = self.app.extensions["faktry"]
        services.settings = services.settings.replace(
            stripe_secret_key=fake.secret_key, stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=fake.url
        )
        paid = fake.completed(fake.checkout(self.tenant.id))
        events = [paid, paid, event("customer.created", {"id": "cus_openapi", "object": "customer"})]
        self.deliveries = [
            (e, {"Stripe-Signature": signed_headers(json.dumps(e), WEBHOOK_SECRET)["Stripe-Signature"]})
            for e in events
        ]

    def flag_a_prompt(self) -> None:
        """A generation job whose prompt moderation lets through but logs as flagged."""
        model = default_catalog().for_type("image.generate")[0].id
        self.submit(
            {"type": "image.generate", "input": {"prompt": "a gore film poster"}, "params": {"model": model}}
        )

    def cursors(self) -> list[str]:
        """A real ``next_cursor`` of each list."""
        return [
            self.client.get(f"/v1/{what}?limit=1", headers=self.tenant.headers).json["next_cursor"] or ""
            for what in (
                "files",
                "jobs",
                "workflows",
                "brands",
                "projects",
                "gallery",
                *(f"workflows/{w}/runs" for w in self.workflow_ids),
            )
        ]


@pytest.fixture
def seeds(request, app, client, tenant, make_tenant, png_image, clip_small) -> Seeds:
    """What the parametrized ``operation`` needs, and no more (finished jobs take a moment)."""
    seeds = Seeds(app, client, tenant, make_tenant, png_image)
    operation = request.node.callspec.params["operation"]
    if NEEDS_MEDIA.match(operation):
        image_id, video_id = seeds.upload(png_image), seeds.upload(clip_small)
        if NEEDS_FINISHED_JOBS.match(operation):
            seeds.run_jobs(request.getfixturevalue("runtime"), image_id, video_id)
        else:
            seeds.submit({"type": "media.probe", "input": {"file_id": image_id}})
    if NEEDS_WORKFLOWS.match(operation):
        seeds.save_workflows(png_image)
    if NEEDS_BRANDS.match(operation):
        seeds.make_brands(png_image)
    if NEEDS_PROJECTS.match(operation):
        seeds.make_projects(png_image)
    if NEEDS_WEBHOOKS.match(operation):
        seeds.make_webhooks()
    if NEEDS_GALLERY.match(operation):
        seeds.make_gallery(request.getfixturevalue("runtime"))
    if NEEDS_INVITATIONS.match(operation):
        r = seeds.client.post(
            "/v1/invitations", headers=seeds.tenant.headers, json={"email": "x@example.com", "role": "viewer"}
        )
        assert r.status_code == 201, r.json
        seeds.invitation_ids.append(str(r.json["id"]))
    if NEEDS_UPLOADS.match(operation):
        seeds.make_uploads()
    if NEEDS_EXPORTS.match(operation):
        seeds.make_exports(request.getfixturevalue("runtime"))
    if NEEDS_STRIPE.match(operation):
        seeds.use_stripe(request.getfixturevalue("stripe_fake"))
    if NEEDS_STAFF.match(operation):
        seeds.flag_a_prompt()
        seeds.headers = make_tenant(admin=True).headers
    return seeds


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    fake = StripeFake().start()
    yield fake
    fake.stop()


def _strategy(operation: Any, seeds: Seeds) -> st.SearchStrategy[Any]:
    """Generated cases (valid and invalid), mixed with valid ones that name real resources."""
    options = [operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)]
    names = {p.name for p in operation.path_parameters}
    if "relpath" in names:
        members = st.sampled_from(seeds.members or [(seeds.file_ids[0], "master.m3u8")])
        known = members.map(lambda member: {"file_id": member[0], "relpath": member[1]})
    else:
        pools = {
            "file_id": seeds.file_ids,
            "job_id": seeds.job_ids,
            "key_id": [seeds.key_id],
            "tenant_id": [seeds.tenant.id],
            "workflow_id": seeds.workflow_ids,
            "run_id": seeds.run_ids,
            "brand_id": seeds.brand_ids,
            "project_id": seeds.project_ids,
            "endpoint_id": seeds.endpoint_ids,
            "message_id": seeds.message_ids,
            "session_id": ["cs_test_unknown"],  # a checkout nobody started: the documented 404
            "entry_id": seeds.entry_ids,
            "archive_id": seeds.archive_ids,
            "user_id": [seeds.tenant.user_id],
            "invitation_id": seeds.invitation_ids or ["inv_" + "0" * 24],
            "upl_id": seeds.upload_ids,
            "tus_id": seeds.upload_ids,
        }
        known = st.fixed_dictionaries({name: st.sampled_from(pools[name]) for name in names})
    if names:
        options.append(
            known.flatmap(lambda ids: operation.as_strategy(path_parameters={n: ids[n] for n in names}))
        )
    if any(p.name == "cursor" for p in operation.query):
        cursors = st.sampled_from(seeds.cursors())
        options.append(cursors.flatmap(lambda cursor: operation.as_strategy(query={"cursor": cursor})))
    if operation.label in ("POST /v1/jobs", "POST /v1/jobs/quote"):
        files = st.sampled_from(seeds.file_ids)
        options.append(st.tuples(operation.as_strategy(), files).map(_with_real_files))
    if operation.label == "POST /v1/workflows/quote":
        saved = st.sampled_from(seeds.workflow_ids)
        options.append(
            saved.flatmap(
                lambda wid: operation.as_strategy(body={"workflow_id": wid, "inputs": seeds.workflow_inputs})
            )
        )
        options.append(operation.as_strategy(body={"graph": GRAPH, "inputs": seeds.workflow_inputs}))
    if operation.label == "POST /v1/workflow-runs":
        options.append(operation.as_strategy(body={"graph": GRAPH, "inputs": seeds.workflow_inputs}))
    if operation.label == "POST /v1/workflows/{workflow_id}/runs":
        saved = st.sampled_from(seeds.workflow_ids)
        options.append(
            saved.flatmap(
                lambda wid: operation.as_strategy(
                    path_parameters={"workflow_id": wid}, body={"inputs": seeds.workflow_inputs}
                )
            )
        )
    if operation.label == "POST /v1/workflows":
        names = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
        options.append(names.flatmap(lambda n: operation.as_strategy(body={"name": n, "graph": GRAPH})))
    if operation.label in ("POST /v1/brands", "PATCH /v1/brands/{brand_id}"):
        # Bodies whose files are the tenant's images, so that more than 422s come back.
        images = st.sampled_from(seeds.image_ids)
        options.append(
            st.tuples(operation.as_strategy(), images).map(lambda drawn: _with_brand_files(*drawn))
        )
    if operation.label in ("POST /v1/projects", "PATCH /v1/projects/{project_id}"):
        # Bodies whose files and brand are the tenant's, so that more than 422s come back.
        mine = st.tuples(
            operation.as_strategy(), st.sampled_from(seeds.image_ids), st.sampled_from(seeds.brand_ids)
        )
        options.append(mine.map(lambda drawn: _with_project_files(*drawn)))
    if operation.label == "POST /v1/files":
        options.append(operation.as_strategy(body={"file": seeds.png_bytes}))
    if operation.label == "POST /v1/billing/checkout":
        options.append(
            st.sampled_from(["starter", "creator"]).flatmap(lambda p: operation.as_strategy(body={"pack": p}))
        )
    if operation.label == "POST /v1/billing/webhook":
        deliveries = st.sampled_from(seeds.deliveries)
        options.append(deliveries.flatmap(lambda d: operation.as_strategy(body=d[0], headers=d[1])))
    if operation.label == "POST /v1/gallery":
        # The tenant's generation jobs, so that more than 404s and 422s come back.
        jobs = st.sampled_from(seeds.job_ids)
        options.append(
            jobs.flatmap(
                lambda job: operation.as_strategy(
                    body={"job_id": job, "category": "art", "display_name": "Pat"}
                )
            )
        )
    if operation.label == "POST /v1/session":
        options.append(operation.as_strategy(body=seeds.login))
    return st.one_of(options)


def _with_brand_files(case: Any, file_id: str) -> Any:
    """The case, its logo and mood images replaced by one of the tenant's images."""
    if isinstance(case.body, dict):
        body = dict(case.body)
        if isinstance(body.get("logo_file_id"), str):
            body["logo_file_id"] = file_id
        if isinstance(body.get("mood_file_ids"), list):
            body["mood_file_ids"] = [file_id][: len(body["mood_file_ids"])]
        case.body = body
    return case


def _with_project_files(case: Any, file_id: str, brand_id: str) -> Any:
    """The case, its scenes' files, its brand and its models replaced by the tenant's own and
    the catalog's, and its music left out (an audio file would be needed)."""
    if isinstance(case.body, dict):
        body = {k: v for k, v in case.body.items() if k != "music"}
        if isinstance(body.get("brand_id"), str):
            body["brand_id"] = brand_id
        if isinstance(body.get("voice"), dict):
            body["voice"] = {k: v for k, v in body["voice"].items() if k != "model"}
        if isinstance(body.get("scenes"), list):
            body["scenes"] = [_scene_with(scene, file_id) for scene in body["scenes"]]
        case.body = body
    return case


def _scene_with(scene: Any, file_id: str) -> Any:
    if not isinstance(scene, dict) or not isinstance(scene.get("media"), dict):
        return scene
    media = scene["media"]
    if "file_id" in media:
        return {**scene, "media": {"file_id": file_id}}
    return {**scene, "media": {k: v for k, v in media.items() if k != "model"}}


def _with_real_files(drawn: tuple[Any, str]) -> Any:
    """The case, its input's files replaced by one of the tenant's."""
    case, file_id = drawn
    given = case.body.get("input")
    if isinstance(given, dict):
        real = {name: file_id if name.endswith("file_id") else value for name, value in given.items()}
        case.body = {**case.body, "input": real}
    return case


@pytest.mark.parametrize("operation", [f"{m} {p}" for m, p in OPERATIONS])
def test_the_api_answers_as_documented(app, seeds, operation):
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)

    @hypothesis.given(case=_strategy(schema[path][method], seeds))
    @hypothesis.settings(
        max_examples=20,
        deadline=None,
        derandomize=True,  # the same cases on every run, so CI is deterministic
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers=seeds.headers, checks=CHECKS)

    answers_as_documented()


# -- inputs the fuzzer rarely draws --------------------------------------------------------------


def _cursor(stamp: str, row_id: str) -> str:
    """A cursor as `pipelines.pagination` encodes one, with any contents."""
    return base64.urlsafe_b64encode(json.dumps([stamp, row_id]).encode()).decode().rstrip("=")


class NotJSON(Exception):
    pass


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise NotJSON(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


NESTED = "[" * 50_000 + "]" * 50_000
NONE: set[str] = set()
# (operation, what the Flask test client sends, the backends on which the API answers
# against its document today). A fixed bug makes its case pass: strict xfail then fails,
# and the backend comes out of the set.
HOSTILE = [
    pytest.param(
        "GET /v1/files",
        {"query_string": {"cursor": _cursor("2020-01-01T00:00:00", "fil_x")}},
        NONE,
        id="a cursor with a time without zone",
    ),
    pytest.param(
        "GET /v1/jobs",
        {"query_string": {"cursor": _cursor("0001-01-01T00:00:00+01:00", "job_x")}},
        NONE,
        id="a cursor with a time before year 1 in UTC",
    ),
    pytest.param(
        "GET /v1/account/transactions",
        {"query_string": {"cursor": _cursor("2020-01-01T00:00:00", "txn_x")}},
        NONE,
        id="a ledger cursor with a time without zone",
    ),
    pytest.param(
        "GET /v1/files",
        {"query_string": {"cursor": _cursor("2020-01-01T00:00:00+00:00", "fil_\x00")}},
        NONE,
        id="a cursor with a NUL in its id",
    ),
    pytest.param("GET /v1/files/{file_id}", {"path": "/v1/files/fil_%00"}, NONE, id="a file id with a NUL"),
    pytest.param(
        "POST /v1/session",
        {"json": {"email": "a\x00@example.com", "password": "x"}},
        NONE,
        id="a NUL email",
    ),
    pytest.param("POST /v1/keys", {"json": {"name": "a\x00"}}, NONE, id="a key name with a NUL"),
    pytest.param(
        "POST /v1/jobs",
        {"json": {"type": "media.probe", "input": {"file_id": "fil_\x00"}}},
        NONE,
        id="an input file id with a NUL",
    ),
    pytest.param(
        "POST /v1/jobs",
        {"data": '{"type": "media.probe", "input": {"file_id": "{file_id}"}, "metadata": {"x": NaN}}'},
        NONE,
        id="NaN in the metadata",
    ),
    pytest.param("POST /v1/jobs", {"data": NESTED}, NONE, id="a deeply nested JSON body"),
    pytest.param("POST /v1/session", {"data": NESTED}, NONE, id="a deeply nested login"),
]


@pytest.mark.parametrize(("operation", "sent", "broken_on"), HOSTILE)
def test_hostile_inputs_are_answered_as_documented(
    request, app, client, tenant, settings, png_image, operation, sent, broken_on
):
    backend = "sqlite" if settings.resolved_database_url.startswith("sqlite") else "postgresql"
    if backend in broken_on:
        reason = f"the API answers 500 or non-JSON on {backend}"
        request.applymarker(pytest.mark.xfail(strict=True, raises=(FailureGroup, NotJSON), reason=reason))
    method, path = operation.split(" ", 1)
    file_id = upload(client, tenant, png_image).json["id"]
    kwargs = {"path": path, **sent}
    if "data" in kwargs:
        kwargs.update(data=kwargs["data"].replace("{file_id}", file_id), content_type="application/json")
    response = client.open(method=method, headers=tenant.headers, **kwargs)
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    case = schema[path][method].Case(path_parameters=dict.fromkeys(re.findall(r"\{(\w+)\}", path), "x"))
    case.validate_response(response, checks=[c for c in CHECKS if c is not ignored_auth])
    _strict_json(response.get_data(as_text=True))


# -- numbers outside their documented range ------------------------------------------------------


def _integer_query_parameters() -> list[Any]:
    """Every integer query parameter of the document, with the operation's other enum-valued
    query parameters (each value of those is tried too: ``format=csv`` must not skip a check)."""
    found = []
    for path, item in build()["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            variants: list[dict[str, str]] = [{}]
            for p in query:
                variants += [{p["name"]: str(v)} for v in p["schema"].get("enum", [])]
            for p in query:
                schema = p["schema"]
                kinds = schema.get("type")
                if "integer" in (kinds if isinstance(kinds, list) else [kinds]):
                    found.append(
                        pytest.param(
                            method.upper(),
                            path,
                            p["name"],
                            schema,
                            variants,
                            id=f"{method} {path} {p['name']}",
                        )
                    )
    return found


def _out_of_range(schema: dict[str, Any]) -> list[str]:
    values = ["1.5", "abc", "", " 5", "1_0", "٣", "9" * 5000]
    if "minimum" in schema:
        values += [str(schema["minimum"] - 1), "-206409129"]
    if "maximum" in schema:
        values += [str(schema["maximum"] + 1), str(10**30)]
    return values


@pytest.mark.parametrize(("method", "path", "name", "schema", "variants"), _integer_query_parameters())
def test_an_integer_query_parameter_outside_its_documented_range_is_refused(
    client, make_tenant, method, path, name, schema, variants
):
    staff = make_tenant(admin=True)  # staff may call every operation
    if "{workflow_id}" in path:
        made = client.post("/v1/workflows", json={"name": "range", "graph": GRAPH}, headers=staff.headers)
        path = path.replace("{workflow_id}", made.json["id"])
    if "{run_id}" in path:
        shot = {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": "a chair"}}
        run = client.post(
            "/v1/workflow-runs", json={"graph": {"nodes": {"shot": shot}}}, headers=staff.headers
        )
        path = path.replace("{run_id}", run.json["id"])
    if "{endpoint_id}" in path:
        made = client.post(
            "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"}, headers=staff.headers
        )
        path = path.replace("{endpoint_id}", made.json["id"])
    assert "{" not in path, "give this operation's path parameters real values here"
    for extra in variants:
        for accept in ("application/json", "text/csv"):
            for value in _out_of_range(schema):
                r = client.open(
                    path, method=method, query_string={**extra, name: value},
                    headers={**staff.headers, "Accept": accept},
                )  # fmt: skip
                assert r.status_code == 422, (extra, accept, value[:20], r.status_code)
                assert r.json["error"]["field"] == name
