"""``/v1/gallery``: the prompt gallery (pipelines/gallery, docs/gallery.md).

Reading is public: ``GET /v1/gallery`` (published entries, newest first, filtered by
category, model and kind, paged with a cursor) and ``GET /v1/gallery/{entry_id}`` need no
credentials, run without a tenant and show published entries only. Publishing
(``POST``) and unpublishing (``DELETE``) are the owner's. Staff removal is under
``/v1/admin/gallery`` (web/api/admin.py).
"""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.db import new_id, transaction
from pipelines import moderation, pagination
from pipelines.gallery import store
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.bodies import json_object
from web.errors import best_effort

PUBLISH_FIELDS = ("job_id", "category", "display_name")


@blueprint.get("/gallery")
def list_gallery() -> Any:
    filters = store.parse_filters(request.args)
    limit = pagination.parse_limit(request.args.get("limit"))
    rows, next_cursor = store.public_list(db(), filters, cursor=request.args.get("cursor"), limit=limit)
    return {"object": "list", "data": [store.public_dict(e) for e in rows], "next_cursor": next_cursor}


@blueprint.get("/gallery/<entry_id>")
def get_gallery_entry(entry_id: str) -> Any:
    return store.public_dict(store.public_get(db(), entry_id))


@blueprint.post("/gallery")
@authenticated
def publish() -> Any:
    """Publish a succeeded generation job: checked, its prompt moderated again (nothing is
    kept when it is blocked), its output copied to the entry's own key, then the entry."""
    svc = services()
    sess = db()
    who = principal()
    job_id, category, display_name = store.parse_publish(json_object(allowed=PUBLISH_FIELDS))
    made = store.candidate(sess, job_id)
    sess.commit()  # no transaction stays open while moderation and the copy take their time

    def record(verdict: moderation.Verdict, text: str) -> None:
        with transaction(svc.sessions) as own:
            moderation.log_entry(
                own, tenant_id=who.tenant_id, verdict=verdict, prompt=text, endpoint="POST /v1/gallery",
                model=made.model,
            )  # fmt: skip

    moderation.screen(svc.moderator, [made.prompt], record=record)
    entry_id = new_id("gal")
    key = store.media_key(entry_id, made.suffix)
    with svc.storage.local_path(made.source_key) as path:
        svc.storage.put_file(key, path, content_type=made.content_type)
    try:
        entry = store.publish(
            sess, tenant_id=who.tenant_id, user_id=who.user_id, entry_id=entry_id, key=key, made=made,
            category=category, display_name=display_name,
        )  # fmt: skip
        answer = store.public_dict(entry)
        sess.commit()
    except BaseException:
        with best_effort("gallery entry %s not published: its copy %s not deleted", entry_id, key):
            svc.storage.delete(key)
        raise
    return answer, 201, {"Location": f"/v1/gallery/{entry_id}"}


@blueprint.delete("/gallery/<entry_id>")
@authenticated
def unpublish(entry_id: str) -> Any:
    """The owner takes an entry out of the gallery (published or removed by staff): the entry
    and its copy of the output go; the job and its output in the library stay."""
    sess = db()
    key = store.unpublish(sess, store.own(sess, entry_id))
    sess.commit()
    with best_effort("gallery entry %s unpublished: its copy %s not deleted", entry_id, key):
        services().storage.delete(key)
    return "", 204
