"""``/v1/brands``: a tenant's brand guidelines, and one brand's export as a Markdown brand
book or a JSON document (see pipelines/brands and docs/brands.md)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from faktry.errors import ValidationError
from pipelines import pagination
from pipelines.brands import book, schema, store
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.bodies import json_object

EXPORT_FORMATS = ("json", "md")


@blueprint.post("/brands")
@authenticated
def create_brand() -> Any:
    sess = db()
    brand = store.create(sess, tenant_id=principal().tenant_id, body=json_object(allowed=schema.FIELDS))
    answer = store.to_dict(brand)
    sess.commit()
    return answer, 201, {"Location": f"/v1/brands/{brand.id}"}


@blueprint.get("/brands")
@authenticated
def list_brands() -> Any:
    rows, next_cursor = store.list_brands(
        db(), cursor=request.args.get("cursor"), limit=pagination.parse_limit(request.args.get("limit"))
    )
    return {"object": "list", "data": [store.to_dict(b) for b in rows], "next_cursor": next_cursor}


@blueprint.get("/brands/<brand_id>")
@authenticated
def get_brand(brand_id: str) -> Any:
    return store.to_dict(store.get(db(), brand_id))


@blueprint.patch("/brands/<brand_id>")
@authenticated
def update_brand(brand_id: str) -> Any:
    sess = db()
    brand = store.get(sess, brand_id)
    store.update(sess, brand, json_object(allowed=schema.FIELDS))
    answer = store.to_dict(brand)
    sess.commit()
    return answer


@blueprint.delete("/brands/<brand_id>")
@authenticated
def delete_brand(brand_id: str) -> Any:
    sess = db()
    store.delete(sess, store.get(sess, brand_id))
    sess.commit()
    return "", 204


@blueprint.get("/brands/<brand_id>/export")
@authenticated
def export_brand(brand_id: str) -> Any:
    sess = db()
    brand = store.get(sess, brand_id)
    kind = request.args.get("format", "json")
    if kind not in EXPORT_FORMATS:
        raise ValidationError("format must be md or json", field="format")
    found = store.files_of(sess, brand)
    if kind == "md":
        text, mimetype = book.to_markdown(brand, found), "text/markdown"
    else:
        text, mimetype = (
            json.dumps(book.to_json(brand, found), indent=2, ensure_ascii=False),
            "application/json",
        )
    disposition = f'attachment; filename="{book.filename(brand, kind)}"'
    return Response(text, mimetype=mimetype, headers={"Content-Disposition": disposition})
