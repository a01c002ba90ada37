"""The JSON API under ``/v1``."""

from typing import Any

from flask import Blueprint, request

from pipelines import pagination

blueprint = Blueprint("api", __name__, url_prefix="/v1")


def requested_page(sess: Any, stmt: Any, *, created: Any, ident: Any) -> tuple[list[Any], str | None]:
    """One page of ``stmt``, newest first, at the request's ``cursor`` and ``limit``."""
    return pagination.page(
        sess,
        stmt,
        created=created,
        ident=ident,
        cursor=request.args.get("cursor"),
        limit=pagination.parse_limit(request.args.get("limit")),
    )


from web.api import (  # noqa: E402,F401
    account,
    admin,
    audit,
    billing,
    brands,
    email,
    files,
    gallery,
    invitations,
    jobs,
    keys,
    members,
    models,
    openapi,
    projects,
    session,
    signup,
    streams,
    uploads,
    webhooks,
    workflow_runs,
    workflows,
)
