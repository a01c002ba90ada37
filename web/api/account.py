"""``/v1/account``: the caller's tenant, tier, credits and storage; its transaction history;
its export, its deletion, and the restriction of its processing."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Response, request, session
from sqlalchemy import select
from sqlalchemy.orm import Session

from faktry.db import transaction
from faktry.errors import Conflict, Forbidden, Gone, ValidationError
from faktry.tenancy import Tenant, User, check_secret
from pipelines import accounts, pagination
from pipelines.accounts import entry_to_dict, lot_to_dict
from pipelines.audit import log as audit
from pipelines.exports import store as exports
from pipelines.lifecycle import UnitOfWork
from pipelines.routing import all_queues
from pipelines.webhooks import endpoints as webhook_endpoints
from quotas import ledger
from quotas.limits import tier_limits
from quotas.models import Account, LedgerEntry
from web import services
from web.api import blueprint, requested_page
from web.api.files import stored_response
from web.auth import authenticated, db, principal
from web.bodies import json_object
from web.errors import best_effort
from workers.actors.exports import send as send_export


@blueprint.get("/account")
@authenticated
def account() -> Any:
    sess = db()
    who = principal()
    tenant = sess.get(Tenant, who.tenant_id)
    assert tenant is not None
    user = sess.get(User, who.user_id) if who.user_id else None
    limits = tier_limits(sess, tenant.tier)
    funds = ledger.balance(sess, tenant.id)
    row = sess.get(Account, tenant.id)
    return {
        "object": "account",
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "tier": tenant.tier,
            "created_at": tenant.created_at.isoformat(),
        },
        "restriction": {
            "restricted": tenant.restricted_at is not None,
            "restricted_at": tenant.restricted_at.isoformat() if tenant.restricted_at else None,
        },
        "user": {"id": user.id, "email": user.email, "is_staff": user.is_staff} if user else None,
        "credits": {
            "unit": "millicredits",
            "available": funds.available,
            "held": funds.held,
            "debt": funds.debt,
            "lots": [lot_to_dict(lot) for lot in funds.lots],
        },
        "storage": {
            "used_bytes": row.storage_used_bytes if row else 0,
            "reserved_bytes": row.storage_reserved_bytes if row else 0,
            "quota_bytes": limits.storage_quota_bytes,
        },
        "limits": {
            "tier": limits.name,
            # What an upload may weigh here: the tier's limit, or the deployment's if lower.
            "max_upload_bytes": min(limits.max_upload_bytes, services().settings.max_upload_bytes),
            "max_duration_seconds": limits.max_duration_seconds,
            "max_concurrent_jobs": limits.max_concurrent_jobs,
            "submits_per_minute": limits.submits_per_minute,
        },
        "auth": who.via,
        "notices": webhook_endpoints.notices(sess, tenant.id),
    }


@blueprint.get("/account/transactions")
@authenticated
def transactions() -> Any:
    """The ledger, newest first, with cursor pagination; ``?format=csv`` exports all of it.
    Both forms check the query the same way: a bad ``limit`` or ``format`` is a 422 in both."""
    sess = db()
    pagination.parse_limit(request.args.get("limit"))
    wanted = request.args.get("format")
    if wanted is not None and wanted != "csv":
        raise ValidationError("format must be csv (or left out for JSON)", field="format")
    if request.args.get("cursor"):
        pagination.decode(request.args["cursor"])
    if wanted == "csv" or request.accept_mimetypes.best == "text/csv":
        return _csv(sess)
    rows, next_cursor = requested_page(
        sess, select(LedgerEntry), created=LedgerEntry.created_at, ident=LedgerEntry.id
    )
    return {"object": "list", "data": [entry_to_dict(e) for e in rows], "next_cursor": next_cursor}


def _csv(sess: Any) -> Response:
    tenant_id = principal().tenant_id
    factory = sess.get_bind()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=accounts.TRANSACTION_CSV_FIELDS)
        writer.writeheader()
        cursor = None
        # Its own session, page by page: the response streams after the request's session closed.
        with Session(bind=factory) as own:
            own.info["tenant_id"] = tenant_id
            while True:
                rows, cursor = pagination.page(
                    own, select(LedgerEntry), created=LedgerEntry.created_at, ident=LedgerEntry.id,
                    cursor=cursor, limit=pagination.MAX_LIMIT,
                )  # fmt: skip
                for entry in rows:
                    writer.writerow(
                        {
                            k: v
                            for k, v in entry_to_dict(entry).items()
                            if k in accounts.TRANSACTION_CSV_FIELDS
                        }
                    )
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if cursor is None:
                    return

    return Response(
        lines(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="faktry-transactions.csv"'},
    )


@blueprint.get("/account/export")
@authenticated
def export_account() -> Any:
    """Everything faktry keeps about this account, as one JSON document."""
    who = principal()
    # A read takes no write lock: the audit entry is written in a transaction of its own,
    # first, so that the export holds it too.
    with transaction(services().sessions, tenant_id=who.tenant_id) as own:
        audit.record(own, who.tenant_id, "export_requested", who=who, address=request.remote_addr,
                     data={"form": "json"})  # fmt: skip
    sess = db()
    sess.commit()  # a new read, after that entry (SQLite's reads see the database as it was)
    body = accounts.export(sess, who.tenant_id)
    return body, 200, {"Content-Disposition": 'attachment; filename="faktry-export.json"'}


@blueprint.post("/account/exports")
@authenticated
def request_export() -> Any:
    """Ask for an export archive: everything in the JSON export, as CSV and Markdown where
    people read it that way, and the media files themselves, built in the background
    (docs/api.md, "Export archive"). While one is being built, asking again answers that
    one. Allowed while the account's processing is restricted: the data stays the person's
    to take."""
    json_object(allowed=(), optional=True)
    who = principal()
    sess = db()
    archive, created = exports.request(sess, who.tenant_id, who.user_id)
    body = exports.to_dict(archive)
    if created:
        audit.record(sess, who.tenant_id, "export_requested", who=who, target=archive.id,
                     address=request.remote_addr, data={"form": "archive"})  # fmt: skip
    uow = UnitOfWork(sess)
    if created:
        sender: Any = services().sender
        broker = getattr(sender, "broker_sender", sender).broker
        uow.after_commit(lambda: send_export(broker, [archive.id]))
    uow.commit()
    return body, 202 if created else 200, {"Location": f"/v1/account/exports/{archive.id}"}


@blueprint.get("/account/exports")
@authenticated
def list_exports() -> Any:
    """The account's last export archives, newest first."""
    rows = exports.list_archives(db(), principal().tenant_id)
    return {"object": "list", "data": [exports.to_dict(r) for r in rows]}


@blueprint.get("/account/exports/<archive_id>")
@authenticated
def get_export(archive_id: str) -> Any:
    return exports.to_dict(exports.get(db(), principal().tenant_id, archive_id))


@blueprint.get("/account/exports/<archive_id>/download")
@authenticated
def download_export(archive_id: str) -> Any:
    """The archive's zip, until it expires (410 ``export_expired``); 409 ``export_not_ready``
    while it is being built, 409 ``export_failed`` if it could not be."""
    sess = db()
    row = exports.get(sess, principal().tenant_id, archive_id)
    if exports.is_expired(row):
        raise Gone("this archive has expired and was removed: ask for a new one", code="export_expired")
    if row.status == "failed":
        raise Conflict("this archive could not be built: ask for a new one", code="export_failed")
    if row.status != "ready" or row.storage_key is None:
        raise Conflict("this archive is still being built: try again shortly", code="export_not_ready")
    key, size = row.storage_key, row.size or 0
    name = f"faktry-export-{row.created_at:%Y-%m-%d}-{row.id}.zip"
    sess.close()
    response = stored_response(key, "application/zip", size, name)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.put("/account/restriction")
@authenticated
def put_restriction() -> Any:
    """Restrict the account's processing (``{"restricted": true}``) or lift the restriction
    (``false``): the person's right, so only from a web session (403 ``session_required``).
    While restricted no job, batch, workflow run or render starts (409 ``account_restricted``);
    nothing is deleted and everything stays readable and exportable."""
    who = principal()
    if who.via != "session":
        raise Forbidden(
            "restricting processing is the person's choice: use a web session, not an API key",
            code="session_required",
        )
    body = json_object(allowed={"restricted"})
    restricted = body.get("restricted")
    if not isinstance(restricted, bool):
        raise ValidationError("restricted must be true or false", field="restricted")
    sess = db()
    answer = accounts.restrict(sess, who.tenant_id, restricted)
    audit.record(sess, who.tenant_id, "restriction_changed", who=who, address=request.remote_addr,
                 data={"restricted": restricted})  # fmt: skip
    sess.commit()
    return answer


@blueprint.delete("/account")
@authenticated
def delete_account() -> Any:
    """Delete the account: its people, sessions, keys, files and jobs, and its traces in Redis.
    Only from a web session, with the password typed again (403 ``password_required`` when it
    is missing, ``wrong_password`` when it is not the person's; both name the ``password``
    field); the pseudonymous ledger stays (seven years, for tax law). Gallery entries are
    unpublished, unless ``keep_gallery_public`` is true: then published ones stay public,
    attributed to their display name only."""
    who = principal()
    if who.via != "session":
        raise Forbidden("deleting an account needs a web session, not an API key", code="session_required")
    body = json_object(allowed={"password", "keep_gallery_public"})
    password = body.get("password")
    keep_gallery = body.get("keep_gallery_public", False)
    if not isinstance(keep_gallery, bool):
        raise ValidationError("keep_gallery_public must be true or false", field="keep_gallery_public")
    sess = db()
    user = sess.get(User, who.user_id)
    if user is None or not isinstance(password, str) or not password:
        raise Forbidden(
            "type your password again to delete the account",
            code="password_required",
            details={"field": "password"},
        )
    if not check_secret(password, user.password_hash or ""):
        raise Forbidden(
            "that is not your password: nothing was deleted",
            code="wrong_password",
            details={"field": "password"},
        )
    deleted = accounts.delete_account(sess, who.tenant_id, keep_gallery_public=keep_gallery)
    if deleted is None:
        # Kept until the deletion goes through (it takes the log with the account).
        audit.record(sess, who.tenant_id, "account_deletion_requested", who=who, address=request.remote_addr)
        sess.commit()
        raise Conflict(
            "jobs are still running; they are being stopped: try again in a minute", code="jobs_running"
        )
    svc = services()
    namespace, queues = svc.settings.redis_namespace, all_queues()
    # Before the commit: while Redis is away the deletion answers 503 and nothing is deleted.
    accounts.forget(svc.redis, namespace, deleted.traces, queues=queues)
    sess.commit()
    # Once more after it: a request in between (a log-in attempt) may have made a key again.
    with best_effort("deleted account %s: Redis keys not removed", who.tenant_id):
        accounts.forget(svc.redis, namespace, deleted.traces, queues=queues)
    for key in deleted.keys:
        with best_effort("deleted account %s: gallery copy %s not deleted", who.tenant_id, key):
            svc.storage.delete(key)
    for prefix in deleted.prefixes:
        # The account is gone once committed: bytes left behind are logged, not answered.
        with best_effort("deleted account %s: files under %s not deleted", who.tenant_id, prefix):
            svc.storage.delete_prefix(prefix)
    session.clear()
    return "", 204
