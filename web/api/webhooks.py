"""``/v1/webhook-endpoints``: a tenant's webhook endpoints, their secrets, the delivery log,
redelivery and test events (see pipelines/webhooks and docs/webhooks.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import request

from faktry.errors import ValidationError
from pipelines.webhooks import endpoints
from pipelines.webhooks.models import WebhookMessage
from web import services
from web.api import blueprint, requested_page
from web.auth import authenticated, db, principal
from web.bodies import json_object

PREFIX = "/webhook-endpoints"


def _loopback() -> bool:
    return services().settings.webhook_allow_loopback


@blueprint.post(PREFIX)
@authenticated
def create_webhook_endpoint() -> Any:
    sess = db()
    body = json_object(allowed=endpoints.FIELDS)
    endpoint = endpoints.create(sess, principal().tenant_id, body, allow_loopback=_loopback())
    answer = endpoints.to_dict(endpoint, secret=True)
    sess.commit()
    return answer, 201, {"Location": f"/v1{PREFIX}/{endpoint.id}"}


@blueprint.get(PREFIX)
@authenticated
def list_webhook_endpoints() -> Any:
    from pipelines.webhooks.models import WebhookEndpoint

    rows, next_cursor = requested_page(
        db(),
        endpoints.listing(principal().tenant_id),
        created=WebhookEndpoint.created_at,
        ident=WebhookEndpoint.id,
    )
    return {"object": "list", "data": [endpoints.to_dict(e) for e in rows], "next_cursor": next_cursor}


@blueprint.get(f"{PREFIX}/<endpoint_id>")
@authenticated
def get_webhook_endpoint(endpoint_id: str) -> Any:
    return endpoints.to_dict(endpoints.get(db(), endpoint_id))


@blueprint.patch(f"{PREFIX}/<endpoint_id>")
@authenticated
def update_webhook_endpoint(endpoint_id: str) -> Any:
    sess = db()
    endpoint = endpoints.get(sess, endpoint_id)
    endpoints.change(sess, endpoint, json_object(allowed=endpoints.FIELDS), allow_loopback=_loopback())
    answer = endpoints.to_dict(endpoint)
    sess.commit()
    return answer


@blueprint.delete(f"{PREFIX}/<endpoint_id>")
@authenticated
def delete_webhook_endpoint(endpoint_id: str) -> Any:
    sess = db()
    endpoints.delete(sess, endpoints.get(sess, endpoint_id))
    sess.commit()
    return "", 204


@blueprint.get(f"{PREFIX}/<endpoint_id>/secret")
@authenticated
def get_webhook_secret(endpoint_id: str) -> Any:
    return endpoints.secret_dict(endpoints.get(db(), endpoint_id))


def _overlap() -> float:
    body = json_object(allowed=("overlap_seconds",), optional=True)
    overlap = body.get("overlap_seconds", services().settings.webhook_rotation_overlap_seconds)
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap <= 7 * 86400:
        raise ValidationError("overlap_seconds must be a number from 0 to 604800", field="overlap_seconds")
    return float(overlap)


@blueprint.post(f"{PREFIX}/<endpoint_id>/rotate-secret")
@authenticated
def rotate_webhook_secret(endpoint_id: str) -> Any:
    sess = db()
    endpoint = endpoints.get(sess, endpoint_id)
    endpoints.rotate(sess, endpoint, _overlap())
    answer = endpoints.secret_dict(endpoint)
    sess.commit()
    return answer


@blueprint.get("/webhook-signing-key")
@authenticated
def get_job_webhook_secret() -> Any:
    """The secret that signs the per-job webhooks given with jobs and workflow runs."""
    sess = db()
    answer = endpoints.secret_dict(endpoints.job_signing_key(sess, principal().tenant_id))
    sess.commit()
    return answer


@blueprint.post("/webhook-signing-key/rotate")
@authenticated
def rotate_job_webhook_secret() -> Any:
    sess = db()
    key = endpoints.job_signing_key(sess, principal().tenant_id)
    endpoints.rotate(sess, key, _overlap())
    answer = endpoints.secret_dict(key)
    sess.commit()
    return answer


@blueprint.post(f"{PREFIX}/<endpoint_id>/test")
@authenticated
def send_webhook_test(endpoint_id: str) -> Any:
    sess = db()
    message_id = endpoints.send_test(sess, endpoints.get(sess, endpoint_id))
    answer = endpoints.message_dict(
        endpoints.get_message(sess, endpoints.get(sess, endpoint_id), message_id), []
    )
    sess.commit()
    return answer, 202


@blueprint.get(f"{PREFIX}/<endpoint_id>/messages")
@authenticated
def list_webhook_messages(endpoint_id: str) -> Any:
    sess = db()
    endpoint = endpoints.get(sess, endpoint_id)
    status = request.args.get("status")
    if status not in (None, "pending", "delivered", "failed"):
        raise ValidationError("status must be pending, delivered or failed", field="status")
    stmt = endpoints.messages(endpoint, subject_id=request.args.get("subject_id"), status=status)
    rows, next_cursor = requested_page(sess, stmt, created=WebhookMessage.created_at, ident=WebhookMessage.id)
    tries = endpoints.attempts(sess, [m.id for m in rows])
    return {
        "object": "list",
        "data": [endpoints.message_dict(m, tries[m.id]) for m in rows],
        "next_cursor": next_cursor,
    }


@blueprint.get(f"{PREFIX}/<endpoint_id>/messages/<message_id>")
@authenticated
def get_webhook_message(endpoint_id: str, message_id: str) -> Any:
    sess = db()
    message = endpoints.get_message(sess, endpoints.get(sess, endpoint_id), message_id)
    return endpoints.message_dict(message, endpoints.attempts(sess, [message.id])[message.id])


@blueprint.post(f"{PREFIX}/<endpoint_id>/messages/<message_id>/redeliver")
@authenticated
def redeliver_webhook_message(endpoint_id: str, message_id: str) -> Any:
    sess = db()
    ids = endpoints.redeliver(sess, endpoints.get(sess, endpoint_id), message_id=message_id)
    sess.commit()
    return {"redelivering": len(ids)}, 202


@blueprint.post(f"{PREFIX}/<endpoint_id>/redeliver")
@authenticated
def redeliver_webhook_messages(endpoint_id: str) -> Any:
    sess = db()
    endpoint = endpoints.get(sess, endpoint_id)
    raw = json_object(allowed=("since",)).get("since")
    try:
        since = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise ValidationError("since must be an ISO 8601 time with a UTC offset", field="since")
    ids = endpoints.redeliver(sess, endpoint, since=since)
    sess.commit()
    return {"redelivering": len(ids)}, 202


@blueprint.get("/webhook-messages")
@authenticated
def list_all_webhook_messages() -> Any:
    """The log per event: the messages of one event (``subject_id`` and ``seq``), or of a job
    or run, to every endpoint (its own webhook included)."""
    sess = db()
    raw_seq = request.args.get("seq")
    if raw_seq is not None and not re.fullmatch(r"[0-9]{1,18}", raw_seq):
        raise ValidationError("seq must be an event's sequence number", field="seq")
    event_type = request.args.get("type")
    if event_type is not None and len(event_type) > 60:
        raise ValidationError("type must be an event type", field="type")
    stmt = endpoints.messages_of_tenant(
        principal().tenant_id,
        subject_id=request.args.get("subject_id"),
        event_type=event_type,
        seq=int(raw_seq) if raw_seq is not None else None,
    )
    rows, next_cursor = requested_page(sess, stmt, created=WebhookMessage.created_at, ident=WebhookMessage.id)
    tries = endpoints.attempts(sess, [m.id for m in rows])
    return {
        "object": "list",
        "data": [endpoints.message_dict(m, tries[m.id]) for m in rows],
        "next_cursor": next_cursor,
    }


@blueprint.get("/webhook-messages/<message_id>")
@authenticated
def get_any_webhook_message(message_id: str) -> Any:
    sess = db()
    message = endpoints.message_of_tenant(sess, message_id)
    return endpoints.message_dict(message, endpoints.attempts(sess, [message.id])[message.id])


@blueprint.post("/webhook-messages/<message_id>/redeliver")
@authenticated
def redeliver_any_webhook_message(message_id: str) -> Any:
    sess = db()
    ids = endpoints.redeliver(sess, None, message_id=message_id)
    sess.commit()
    return {"redelivering": len(ids)}, 202
