"""The prompt gallery: a person publishes a succeeded generation job (its prompt moderated
again), anyone browses it logged out, the owner unpublishes, staff remove entries with the
reason in the moderation log, and nothing else of a tenant is ever reachable from it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import event, func, select

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines import pagination, runner
from pipelines.gallery import store
from pipelines.gallery.models import GalleryEntry
from pipelines.models import ModerationEntry
from pipelines.moderation import Moderator
from storage.models import File
from tests.web.helpers import upload

PASSWORD = "correct horse battery staple"


def generate(
    client: Any, runtime: Any, tenant: Any, prompt: str = "a red chair", **params: Any
) -> dict[str, Any]:
    """A succeeded image.generate job of ``tenant`` (run here, as the job actor runs it)."""
    body = {
        "type": "image.generate",
        "input": {"prompt": prompt},
        "params": {"model": "local-image", **params},
    }
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    runner.run(runtime.context, r.json["id"])
    done = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert done["status"] == "succeeded", done
    return dict(done)


def publish(client: Any, tenant: Any, job_id: str, **fields: Any) -> Any:
    body = {"job_id": job_id, "category": "product", "display_name": "Pat Q.", **fields}
    return client.post("/v1/gallery", json=body, headers=tenant.headers)


def anonymous(app: Any) -> Any:
    return app.test_client()


def login(client: Any, person: Any) -> dict[str, str]:
    r = client.post("/v1/session", json={"email": person.email, "password": PASSWORD})
    assert r.status_code == 201, r.json
    return {"X-CSRF-Token": r.json["csrf_token"]}


def test_a_published_job_is_shown_to_people_who_are_not_logged_in(app, client, runtime, make_tenant):
    person = make_tenant()
    job = generate(client, runtime, person, "a red chair in a sunlit room")
    output = client.get(f"/v1/files/{job['outputs'][0]['id']}/content", headers=person.headers)
    r = publish(client, person, job["id"], category="product", display_name="Pat Q.")
    assert r.status_code == 201, r.json
    entry = r.json
    assert entry["id"].startswith("gal_") and r.headers["Location"] == f"/v1/gallery/{entry['id']}"
    assert (entry["prompt"], entry["model"], entry["display_name"], entry["category"], entry["kind"]) == (
        "a red chair in a sunlit room", "local-image", "Pat Q.", "product", "image",
    )  # fmt: skip

    visitor = anonymous(app)
    listed = visitor.get("/v1/gallery")
    assert listed.status_code == 200 and [e["id"] for e in listed.json["data"]] == [entry["id"]]
    assert visitor.get(f"/v1/gallery/{entry['id']}").json == entry
    media = visitor.get(entry["media_url"])
    assert media.status_code == 200 and media.data == output.data
    assert media.mimetype == entry["content_type"]
    cache = media.headers["Cache-Control"]
    assert "public" in cache and "immutable" in cache and re.search(r"max-age=\d+", cache)
    assert media.headers["X-Content-Type-Options"] == "nosniff"
    # Conditional requests: a CDN or browser revalidates for nothing.
    again = visitor.get(entry["media_url"], headers={"If-None-Match": media.headers["ETag"]})
    assert again.status_code == 304


def test_the_public_gallery_filters_by_category_model_and_kind_and_pages_with_a_cursor(
    app, client, runtime, make_tenant
):
    person = make_tenant()
    made = []
    for category in ("product", "food", "product"):
        job = generate(client, runtime, person, f"a {category} shot")
        made.append(publish(client, person, job["id"], category=category).json["id"])
    visitor = anonymous(app)
    first = visitor.get("/v1/gallery?limit=2").json
    second = visitor.get(f"/v1/gallery?limit=2&cursor={first['next_cursor']}").json
    assert [e["id"] for e in first["data"] + second["data"]] == made[::-1]
    assert second["next_cursor"] is None
    products = visitor.get("/v1/gallery?category=product").json["data"]
    assert [e["id"] for e in products] == [made[2], made[0]]
    assert len(visitor.get("/v1/gallery?model=local-image&kind=image").json["data"]) == 3
    assert visitor.get("/v1/gallery?kind=video").json["data"] == []
    for query, field in (("category=weather", "category"), ("kind=text", "kind"), ("limit=0", "limit")):
        r = visitor.get(f"/v1/gallery?{query}")
        assert r.status_code == 422 and r.json["error"]["field"] == field


def test_what_cannot_be_published_is_refused_and_nothing_is_kept(
    app, client, runtime, make_tenant, png_image
):
    person = make_tenant()
    done = generate(client, runtime, person)
    file_id = upload(client, person, png_image).json["id"]
    resize = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    resized = client.post("/v1/jobs", json=resize, headers=person.headers).json["id"]
    runner.run(runtime.context, resized)
    body = {"type": "image.generate", "input": {"prompt": "a chair"}, "params": {"model": "local-image"}}
    queued = client.post("/v1/jobs", json=body, headers=person.headers).json["id"]
    cases = [
        (publish(client, person, "job_" + "0" * 24), 404, "job_not_found"),
        (publish(client, person, resized), 422, "not_publishable"),
        (publish(client, person, queued), 409, "job_not_succeeded"),
        (publish(client, person, done["id"], category="weather"), 422, "invalid_request"),
        (publish(client, person, done["id"], display_name=" "), 422, "invalid_request"),
        (publish(client, person, done["id"], display_name="x" * 61), 422, "invalid_request"),
        (publish(client, person, done["id"], extra=1), 422, "unknown_field"),
    ]
    for r, status, code in cases:
        assert (r.status_code, r.json["error"]["code"]) == (status, code), r.json
    assert publish(client, person, done["id"]).status_code == 201
    twice = publish(client, person, done["id"])
    assert twice.status_code == 409 and twice.json["error"]["code"] == "already_published"
    assert len(anonymous(app).get("/v1/gallery").json["data"]) == 1
    visitor = anonymous(app)
    body = {"job_id": done["id"], "category": "food", "display_name": "x"}
    assert visitor.post("/v1/gallery", json=body).status_code == 401


def test_a_prompt_moderation_now_blocks_is_refused_on_publish_with_nothing_published(
    app, client, runtime, make_tenant
):
    person = make_tenant()
    job = generate(client, runtime, person, "a gore film poster")  # flagged at submit, allowed
    # Moderation is stricter now than when the job ran: publishing checks the prompt again.
    app.extensions["faktry"].moderator = Moderator(borderline=0.2, block=0.3)
    r = publish(client, person, job["id"])
    assert r.status_code == 422 and r.json["error"]["code"] == "content_blocked"
    assert anonymous(app).get("/v1/gallery").json["data"] == []
    storage = runtime.context.storage
    assert list(storage.list("gallery/")) == []
    with transaction(runtime.context.sessions) as s:
        assert s.scalar(select(func.count()).select_from(GalleryEntry)) == 0
        logged = s.scalars(
            select(ModerationEntry).where(ModerationEntry.endpoint == "POST /v1/gallery")
        ).all()
        assert [(m.action, m.prompt, m.tenant_id) for m in logged] == [
            ("blocked", "a gore film poster", person.id)
        ]


def test_the_owner_unpublishes_and_entry_page_and_media_are_gone(app, client, runtime, make_tenant):
    person = make_tenant()
    job = generate(client, runtime, person)
    entry = publish(client, person, job["id"]).json
    visitor = anonymous(app)
    assert visitor.delete(f"/v1/gallery/{entry['id']}").status_code == 401
    assert client.delete(f"/v1/gallery/{entry['id']}", headers=person.headers).status_code == 204
    for path in (f"/v1/gallery/{entry['id']}", entry["media_url"], entry["page_url"]):
        assert visitor.get(path).status_code == 404, path
    assert visitor.get("/v1/gallery").json["data"] == []
    assert list(runtime.context.storage.list("gallery/")) == []
    # The job and its output stay in the person's library; it may be published again.
    output = job["outputs"][0]["id"]
    assert client.get(f"/v1/files/{output}/content", headers=person.headers).status_code == 200
    assert publish(client, person, job["id"]).status_code == 201


def test_another_tenant_cannot_unpublish_an_entry_and_is_answered_as_for_an_unknown_one(
    app, client, runtime, make_tenant
):
    owner, stranger = make_tenant(), make_tenant()
    entry = publish(client, owner, generate(client, runtime, owner)["id"]).json
    theirs = client.delete(f"/v1/gallery/{entry['id']}", headers=stranger.headers)
    unknown = client.delete("/v1/gallery/gal_" + "0" * 24, headers=stranger.headers)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json == unknown.json
    assert anonymous(app).get(f"/v1/gallery/{entry['id']}").status_code == 200
    # Nor can they publish the owner's job.
    stolen = publish(client, stranger, entry_job(runtime, entry["id"]))
    assert stolen.status_code == 404 and stolen.json["error"]["code"] == "job_not_found"


def entry_job(runtime: Any, entry_id: str) -> str:
    with transaction(runtime.context.sessions) as s:
        return str(s.get(GalleryEntry, entry_id).job_id)


def test_staff_remove_an_entry_with_the_reason_kept_in_the_moderation_log(app, client, runtime, make_tenant):
    person, staff = make_tenant(), make_tenant(admin=True)
    entry = publish(client, person, generate(client, runtime, person, "a blue vase")["id"]).json
    path = f"/v1/admin/gallery/{entry['id']}/remove"
    refused = client.post(path, json={"reason": "mine now"}, headers=person.headers)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "staff_only"
    assert client.post(path, json={}, headers=staff.headers).status_code == 422
    r = client.post(path, json={"reason": "depicts a real person without consent"}, headers=staff.headers)
    assert r.status_code == 200, r.json
    assert (r.json["status"], r.json["removed_reason"]) == (
        "removed",
        "depicts a real person without consent",
    )
    visitor = anonymous(app)
    for hidden in (f"/v1/gallery/{entry['id']}", entry["media_url"], entry["page_url"]):
        assert visitor.get(hidden).status_code == 404, hidden
    assert visitor.get("/v1/gallery").json["data"] == []
    again = client.post(path, json={"reason": "twice"}, headers=staff.headers)
    assert (
        again.status_code == 200 and again.json["removed_reason"] == "depicts a real person without consent"
    )
    log = client.get("/v1/admin/moderation?action=removed", headers=staff.headers).json["data"]
    assert [(e["tenant_id"], e["prompt"], e["model"], e["reason"]) for e in log] == [
        (person.id, "a blue vase", "local-image", "depicts a real person without consent")
    ]
    # The owner sees why in the export, and may still delete the entry.
    export = client.get("/v1/account/export", headers=person.headers).json
    assert [(e["status"], e["removed_reason"]) for e in export["gallery_entries"]] == [
        ("removed", "depicts a real person without consent")
    ]
    assert client.delete(f"/v1/gallery/{entry['id']}", headers=person.headers).status_code == 204


def test_the_public_gallery_never_leaks_unpublished_files_or_other_tenants_data(
    app, client, runtime, make_tenant, png_image
):
    mine, other = make_tenant(), make_tenant()
    published = generate(client, runtime, mine, "a lighthouse at dusk")
    entry = publish(client, mine, published["id"]).json
    kept_private = generate(client, runtime, mine, "my secret draft")  # never published
    theirs = generate(client, runtime, other, "their private idea")
    upload(client, other, png_image, name="their-upload.png")
    with transaction(runtime.context.sessions) as s:
        files = s.scalars(select(File)).all()
        marks = {
            mine.id, mine.email, other.id, other.email, published["id"], kept_private["id"], theirs["id"],
            "my secret draft", "their private idea", "their-upload.png",
            *(f.id for f in files), *(f.sha256 for f in files), *(f.storage_key for f in files),
        }  # fmt: skip
    visitor = anonymous(app)
    answers = [
        visitor.get("/v1/gallery"),
        visitor.get(f"/v1/gallery/{entry['id']}"),
        visitor.get(entry["media_url"]),
        visitor.get("/gallery"),
        visitor.get(entry["page_url"]),
    ]
    for r in answers:
        assert r.status_code == 200
        text = r.data.decode("latin-1") + json.dumps(dict(r.headers))
        assert sorted(m for m in marks if m in text) == []
    # No file of the tenant is reachable by its own id, nor by guessing at the media route.
    for f in files:
        assert visitor.get(f"/gallery/media/{f.id}").status_code == 404
        assert visitor.get(f"/v1/gallery/{f.id}").status_code == 404
    for path in ("/gallery/media/", "/gallery/media/gal_", "/gallery/media/..%2F..%2Ft"):
        assert visitor.get(path).status_code == 404, path


def test_gallery_entries_are_in_the_export_and_unpublished_when_the_account_is_deleted(
    app, client, runtime, make_tenant
):
    person = make_tenant(password=PASSWORD)
    entry = publish(client, person, generate(client, runtime, person, "a teapot")["id"]).json
    export = client.get("/v1/account/export", headers=person.headers).json
    assert [(e["id"], e["status"], e["prompt"]) for e in export["gallery_entries"]] == [
        (entry["id"], "published", "a teapot")
    ]
    browser = app.test_client()
    r = browser.delete("/v1/account", json={"password": PASSWORD}, headers=login(browser, person))
    assert r.status_code == 204
    visitor = anonymous(app)
    assert visitor.get(f"/v1/gallery/{entry['id']}").status_code == 404
    assert visitor.get(entry["media_url"]).status_code == 404
    assert list(runtime.context.storage.list("gallery/")) == []


def test_a_person_who_deletes_the_account_may_keep_their_entries_public(app, client, runtime, make_tenant):
    person = make_tenant(password=PASSWORD)
    entry = publish(client, person, generate(client, runtime, person, "a kite")["id"]).json
    browser = app.test_client()
    csrf = login(browser, person)
    refused = browser.delete(
        "/v1/account", json={"password": PASSWORD, "keep_gallery_public": "yes"}, headers=csrf
    )
    assert refused.status_code == 422 and refused.json["error"]["field"] == "keep_gallery_public"
    r = browser.delete("/v1/account", json={"password": PASSWORD, "keep_gallery_public": True}, headers=csrf)
    assert r.status_code == 204
    visitor = anonymous(app)
    assert visitor.get(f"/v1/gallery/{entry['id']}").json == entry
    assert visitor.get(entry["media_url"]).status_code == 200
    with transaction(runtime.context.sessions) as s:
        kept = s.get(GalleryEntry, entry["id"])
        assert (kept.user_id, kept.file_id) == (None, None)


def test_the_gallery_pages_show_entries_and_attribution_to_people_not_logged_in(
    app, client, runtime, make_tenant
):
    person = make_tenant(password=PASSWORD)
    job = generate(client, runtime, person, "a copper kettle <on> a stove", width=96, height=64)
    entry = publish(client, person, job["id"], category="food", display_name="Kim & Co").json
    visitor = anonymous(app)
    grid = visitor.get("/gallery", headers={"Accept": "text/html"})
    page = grid.get_data(as_text=True)
    assert grid.status_code == 200 and entry["page_url"] in page and entry["media_url"] in page
    assert "a copper kettle &lt;on&gt; a stove" in page and "Kim &amp; Co" in page
    assert entry["id"] not in visitor.get("/gallery?category=people").get_data(as_text=True)
    assert entry["id"] in visitor.get("/gallery?category=food&kind=image").get_data(as_text=True)
    assert visitor.get("/gallery?kind=poem").status_code == 422

    shown = visitor.get(entry["page_url"])
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200
    for fact in ("a copper kettle &lt;on&gt; a stove", "local-image", "Kim &amp; Co", "width", "food"):
        assert fact in text, fact
    assert "Log in to use this prompt" in text

    # Logged in, "Use this prompt" opens the job form with the type, model and prompt filled in.
    browser = app.test_client()
    login(browser, person)
    reuse = re.search(
        r'id="use-prompt" href="([^"]+)"', browser.get(entry["page_url"]).get_data(as_text=True)
    )
    assert reuse and reuse.group(1).startswith("/jobs/new?")
    form = browser.get(reuse.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert 'data-preset-type="image.generate"' in form and 'data-preset-model="local-image"' in form
    assert 'data-preset-prompt="a copper kettle &lt;on&gt; a stove"' in form


def test_the_job_page_of_a_succeeded_generation_job_offers_publishing(
    app, client, runtime, make_tenant, png_image
):
    person = make_tenant(password=PASSWORD)
    job = generate(client, runtime, person)
    file_id = upload(client, person, png_image).json["id"]
    resize = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    resized = client.post("/v1/jobs", json=resize, headers=person.headers).json["id"]
    browser = app.test_client()
    login(browser, person)
    assert 'id="publish-form"' in browser.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'id="publish-form"' not in browser.get(f"/jobs/{resized}").get_data(as_text=True)


@pytest.mark.parametrize(
    "filters", [{}, {"category": "product"}, {"model": "local-image"}, {"kind": "image"}], ids=repr
)
@pytest.mark.parametrize("paged", [False, True], ids=["first page", "cursor"])
def test_every_public_listing_is_an_index_range_newest_first(sqlite_url, filters, paged):
    """However many entries there are, a page reads one index range in order: no scan of the
    table and no sort (`bench.gallery_listing` times it with 100 and 10,000 entries)."""
    engine = make_engine(sqlite_url)
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "gallery_entries" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        cursor = pagination.encode(clock.now(), "gal_" + "f" * 24) if paged else None
        with transaction(make_sessionmaker(engine)) as session:
            store.public_list(session, filters, cursor=cursor, limit=24)
        assert len(seen) == 1
        statement, parameters = seen[0]
        with engine.connect() as conn:
            plan = " | ".join(
                row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
    finally:
        engine.dispose()
    assert "USING INDEX ix_gallery_entries_public" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
