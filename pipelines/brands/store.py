"""A tenant's brands: create, read, change, list and delete.

A body is checked whole against the brand schema (`schema.check`) and its files against the
library before anything is kept: the logo and every mood image must be an image file of the
caller's own library (not a member of a multi-file output). Another tenant's file answers
``422 file_not_found`` exactly like a file that does not exist; a file that is not an image
answers ``422 not_an_image``; both name the field (``mood_file_ids.2``). A name is unique
within the tenant (``409 brand_name_taken``).

A change (`update`) replaces each field it sends, except ``colors``, ``typography`` and
``voice``, whose keys are merged into what the brand has (send ``{"colors": {"accent":
"#ff8800"}}`` to change the accent alone).

Functions take a session scoped to the caller's tenant (the edge's), may flush, never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import Conflict, NotFound, ValidationError
from pipelines import pagination
from pipelines.brands import schema
from pipelines.brands.models import Brand
from storage.models import File

#: What an empty brand holds in each part, in its stored shape.
EMPTY: dict[str, Any] = {
    "description": "",
    "tagline": "",
    "logo_file_id": None,
    "colors": schema.normalized("colors", {}),
    "typography": schema.normalized("typography", {}),
    "voice": schema.normalized("voice", {}),
    "audience": "",
    "personas": [],
    "mood_file_ids": [],
    "design_notes": "",
}


def create(session: Session, *, tenant_id: str, body: dict[str, Any]) -> Brand:
    """A new brand from ``body`` (``name`` required; see the module's docstring for refusals)."""
    schema.check(body, creating=True)
    _check_files(session, tenant_id, body)
    now = clock.now()
    values = {**EMPTY, **{f: schema.normalized(f, v) for f, v in body.items()}}
    brand = Brand(tenant_id=tenant_id, created_at=now, updated_at=now, **values)
    with _unique_name(session, values["name"]):
        session.add(brand)
    return brand


def get(session: Session, brand_id: str) -> Brand:
    """The caller's brand; another tenant's answers exactly as one that does not exist."""
    found = session.get(Brand, brand_id) if brand_id.startswith("brd_") else None
    tenant = session.info.get("tenant_id")
    if found is None or (tenant is not None and found.tenant_id != tenant):
        raise NotFound("no such brand", code="brand_not_found")
    return found


def update(session: Session, brand: Brand, body: dict[str, Any]) -> Brand:
    """The brand with ``body``'s fields changed (nothing changes if the body is refused)."""
    schema.check(body, creating=False)
    _check_files(session, brand.tenant_id, body)
    with _unique_name(session, body.get("name", brand.name)):
        for field, value in body.items():
            if field in schema.MERGED:
                value = {**getattr(brand, field), **value}
            setattr(brand, field, schema.normalized(field, value))
        if body:
            brand.updated_at = clock.now()
    return brand


def delete(session: Session, brand: Brand) -> None:
    session.delete(brand)
    session.flush()


def list_brands(session: Session, *, cursor: str | None, limit: int) -> tuple[list[Brand], str | None]:
    """One page of the caller's brands, newest first."""
    return pagination.page(
        session, select(Brand), created=Brand.created_at, ident=Brand.id, cursor=cursor, limit=limit
    )


@contextmanager
def _unique_name(session: Session, name: str) -> Iterator[None]:
    """The changes made inside, flushed in a savepoint: a name the tenant has already is a
    409 and leaves nothing half-written."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError:
        raise Conflict(f"you already have a brand named {name.strip()!r}", code="brand_name_taken") from None


def _check_files(session: Session, tenant_id: str, body: dict[str, Any]) -> None:
    named: list[tuple[str, str]] = []
    if body.get("logo_file_id") is not None:
        named.append(("logo_file_id", body["logo_file_id"]))
    named += [(f"mood_file_ids.{i}", file_id) for i, file_id in enumerate(body.get("mood_file_ids", []))]
    if not named:
        return
    ids = {file_id for _, file_id in named}
    # The tenant's own files only, whatever the session's scope: the ids came from the client.
    kinds: dict[str, str] = dict(
        session.execute(
            select(File.id, File.kind).where(
                File.id.in_(ids), File.tenant_id == tenant_id, File.root_id.is_(None)
            )
        ).all()
    )
    for field, file_id in named:
        if file_id not in kinds:
            raise ValidationError("no such file", field=field, code="file_not_found")
        if kinds[file_id] != "image":
            raise ValidationError("this file is not an image", field=field, code="not_an_image")


def files_of(session: Session, brand: Brand) -> dict[str, File]:
    """The brand's logo and mood images that are still in the library, by id."""
    ids = {*brand.mood_file_ids, *([brand.logo_file_id] if brand.logo_file_id else [])}
    if not ids:
        return {}
    rows = session.scalars(select(File).where(File.id.in_(ids), File.tenant_id == brand.tenant_id))
    return {row.id: row for row in rows}


def to_dict(brand: Brand) -> dict[str, Any]:
    return {
        "id": brand.id,
        "object": "brand",
        "name": brand.name,
        **{field: getattr(brand, field) for field in EMPTY},
        "created_at": brand.created_at.isoformat(),
        "updated_at": brand.updated_at.isoformat(),
    }
