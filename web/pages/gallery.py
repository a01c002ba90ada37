"""The public prompt gallery: a grid of published entries with filters and pages, one entry's
page, and the entries' media. None of them needs a log-in; all of them read without a
tenant and show published entries only (pipelines/gallery/store.py).

The grid and the entry page are rendered here, whole, so they work without JavaScript and a
crawler or a CDN sees them as they are. An entry's media is served at
``/gallery/media/<entry id>``: the entry's own copy of the output, never a library file, so
no id of the tenant's reaches it; its bytes never change, so it is cacheable for a day by
anyone (``public, max-age, immutable``) and revalidated by its ETag. Removing or
unpublishing an entry answers 404 here at once; a CDN in front keeps its copy up to
`MEDIA_MAX_AGE` unless purged (docs/gallery.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, g, request, send_file, stream_with_context

from faktry.errors import FaktryError, NotFound
from pipelines import files
from pipelines.gallery import store
from storage.local import LocalStorage
from web import services
from web.auth import db, session_user
from web.pages import blueprint, render

#: Seconds a browser or CDN may keep an entry's media without asking again.
MEDIA_MAX_AGE = 86400
#: Entries per page of the grid.
PAGE_SIZE = 24


@blueprint.get("/gallery")
def gallery() -> Any:
    try:
        filters = store.parse_filters(request.args)
        rows, next_cursor = store.public_list(
            db(), filters, cursor=request.args.get("cursor") or None, limit=PAGE_SIZE
        )
    except FaktryError as err:
        return render("error.html", title="Gallery", message=err.message), err.status
    more = urlencode({**filters, "cursor": next_cursor}) if next_cursor else None
    return render(
        "gallery.html",
        title="Prompt gallery",
        active="gallery",
        entries=[store.public_dict(e) for e in rows],
        filters=filters,
        categories=store.CATEGORIES,
        kinds=store.KINDS,
        models=sorted({e.model for e in rows} | ({filters["model"]} if "model" in filters else set())),
        more=more,
        first_page=not request.args.get("cursor"),
        unpublished=request.args.get("unpublished") == "1",
    )


@blueprint.get("/gallery/<entry_id>")
def gallery_entry(entry_id: str) -> Any:
    try:
        entry = store.public_get(db(), entry_id)
    except NotFound:
        return render("error.html", title="Not found", message="There is no such gallery entry."), 404
    shown = store.public_dict(entry)
    reuse = "/jobs/new?" + urlencode({"type": entry.job_type, "model": entry.model, "prompt": entry.prompt})
    viewer = _viewer()
    return render(
        "gallery_entry.html",
        title=f"Gallery: {entry.category}",
        active="gallery",
        entry=shown,
        params=sorted(shown["params"].items()),
        reuse=reuse,
        # The submitter may unpublish it here; staff may remove it for a policy violation.
        mine=viewer is not None and viewer.tenant_id == entry.tenant_id,
        staff=viewer is not None and viewer.is_staff,
        max_reason=store.MAX_REASON,
    )


def _viewer() -> Any:
    """The person logged in, if any (the gallery's pages are public)."""
    if "user" not in g:
        g.user = session_user(db())
    return g.user


@blueprint.get("/gallery/media/<entry_id>")
def gallery_media(entry_id: str) -> Any:
    sess = db()
    entry = store.public_get(sess, entry_id)
    key, content_type, size, etag = entry.storage_key, entry.content_type, entry.size, entry.id
    sess.close()  # no transaction stays open while bytes stream
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        storage = services().storage
        if isinstance(storage, LocalStorage):
            with storage.local_path(key) as path:
                response = send_file(path, mimetype=content_type, conditional=True, etag=etag)
        else:
            response = Response(stream_with_context(storage.iter_chunks(key)), mimetype=content_type)
            response.headers["Content-Length"] = str(size)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={MEDIA_MAX_AGE}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline" if files.served_inline(content_type) else "attachment"
    return response
