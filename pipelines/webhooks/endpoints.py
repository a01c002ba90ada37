"""A tenant's webhook endpoints: create, change, rotate the secret, delete; the delivery
log; redelivery and test events. Services take the request's session and never commit.

A URL is refused at once when it is not http(s), carries credentials, or names an address
that is never reachable (a literal private, link-local or loopback IP); a host name is
checked again at every delivery, after resolving it (`safehttp`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import NotFound, ValidationError
from pipelines.webhooks import outbox, safehttp, signing
from pipelines.webhooks.models import (
    PENDING,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookSigningKey,
)

FIELDS = ("url", "description", "events", "enabled")
MAX_ENDPOINTS = 20


@contextmanager
def changing(session: Session, tenant_id: str) -> Iterator[None]:
    """Around any change to a tenant's endpoints: keeps ``accounts.webhooks`` (whether it has
    an enabled one) true to the table. The account row is locked first, as a submit's hold
    locks it, so a job's events see either the endpoints before the change or after it."""
    from quotas import ledger

    account = ledger.lock_account(session, tenant_id)
    yield
    session.flush()
    account.webhooks = bool(
        session.scalar(
            select(exists().where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True)))
        )
    )
    session.flush()
    outbox.forget(session, tenant_id)


def check_url(url: Any, *, allow_loopback: bool, field: str = "url") -> str:
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise ValidationError(
            "url must be an http:// or https:// URL of at most 2000 characters", field=field
        )
    try:
        _, host, _, _ = safehttp.check_url(url)
    except safehttp.Refused as refused:
        raise ValidationError(str(refused), field=field, code="invalid_url") from None
    literal = safehttp.literal_address(host)
    is_local = host == "localhost" or host.endswith(".localhost")
    if (literal is not None and safehttp.blocked(literal, allow_loopback=allow_loopback)) or (
        is_local and not allow_loopback
    ):
        raise ValidationError(
            "url points at an address that webhooks cannot reach (loopback, private, link-local)",
            field=field,
            code="url_not_allowed",
        )
    return url


def check_events(events: Any, *, field: str = "events") -> list[str]:
    if events is None:
        return []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ValidationError("events must be a list of event types", field=field)
    unknown = sorted(set(events) - set(outbox.EVENT_TYPES))
    if unknown:
        raise ValidationError(
            f"unknown event type {unknown[0]!r}; known: {', '.join(outbox.EVENT_TYPES)}", field=field
        )
    return sorted(set(events))


def _apply(endpoint: WebhookEndpoint, body: dict[str, Any], *, allow_loopback: bool) -> None:
    if "url" in body:
        endpoint.url = check_url(body["url"], allow_loopback=allow_loopback)
    if "description" in body:
        text = body["description"]
        if not isinstance(text, str) or len(text) > 500:
            raise ValidationError("description must be text of at most 500 characters", field="description")
        endpoint.description = text
    if "events" in body:
        endpoint.events = check_events(body["events"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ValidationError("enabled must be true or false", field="enabled")
        endpoint.enabled = body["enabled"]
        if endpoint.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None


def create(
    session: Session, tenant_id: str, body: dict[str, Any], *, allow_loopback: bool
) -> WebhookEndpoint:
    if "url" not in body:
        raise ValidationError("url is required", field="url")
    count = session.scalar(
        select(WebhookEndpoint.id)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.subject_id.is_(None))
        .offset(MAX_ENDPOINTS - 1)
        .limit(1)
    )
    if count is not None:
        raise ValidationError(f"a tenant has at most {MAX_ENDPOINTS} webhook endpoints", field="url")
    endpoint = WebhookEndpoint(tenant_id=tenant_id, secret=signing.new_secret(), events=[], description="")
    _apply(endpoint, body, allow_loopback=allow_loopback)
    with changing(session, tenant_id):
        session.add(endpoint)
    return endpoint


def get(session: Session, endpoint_id: str) -> WebhookEndpoint:
    """The caller's endpoint; another tenant's answers exactly as one that does not exist."""
    found = session.get(WebhookEndpoint, endpoint_id) if endpoint_id.startswith("whe_") else None
    tenant = session.info.get("tenant_id")
    if found is None or found.subject_id is not None or (tenant is not None and found.tenant_id != tenant):
        raise NotFound("no such webhook endpoint", code="webhook_endpoint_not_found")
    return found


def change(
    session: Session, endpoint: WebhookEndpoint, body: dict[str, Any], *, allow_loopback: bool
) -> None:
    with changing(session, endpoint.tenant_id):
        _apply(endpoint, body, allow_loopback=allow_loopback)
        endpoint.updated_at = clock.now()


def delete(session: Session, endpoint: WebhookEndpoint) -> None:
    with changing(session, endpoint.tenant_id):
        session.delete(endpoint)


def listing(tenant_id: str) -> Any:
    return select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.subject_id.is_(None)
    )


def rotate(session: Session, holder: WebhookEndpoint | WebhookSigningKey, overlap_seconds: float) -> None:
    """A new secret; the old one keeps signing too for ``overlap_seconds``."""
    now = clock.now()
    holder.previous_secret = holder.secret
    holder.previous_until = now + timedelta(seconds=overlap_seconds)
    holder.secret = signing.new_secret()
    session.flush()


def job_signing_key(session: Session, tenant_id: str) -> WebhookSigningKey:
    """The secret the tenant's per-job webhooks are signed with (made on first use)."""
    key = session.get(WebhookSigningKey, tenant_id)
    if key is None:
        key = WebhookSigningKey(tenant_id=tenant_id, secret=signing.new_secret())
        session.add(key)
        session.flush()
    return key


def send_test(session: Session, endpoint: WebhookEndpoint) -> str:
    ids = outbox.record(
        session,
        endpoint.tenant_id,
        outbox.TEST,
        {"endpoint_id": endpoint.id, "message": "a test event sent from faktry"},
        endpoint_id=endpoint.id,
    )
    if not ids:
        raise ValidationError("the endpoint is disabled; enable it first", field="enabled")
    return ids[0]


def get_message(session: Session, endpoint: WebhookEndpoint, message_id: str) -> WebhookMessage:
    found = session.get(WebhookMessage, message_id) if message_id.startswith("msg_") else None
    if found is None or found.endpoint_id != endpoint.id:
        raise NotFound("no such webhook message", code="webhook_message_not_found")
    return found


def message_of_tenant(session: Session, message_id: str) -> WebhookMessage:
    """One of the caller's messages, to any endpoint (a per-job webhook's too)."""
    found = session.get(WebhookMessage, message_id) if message_id.startswith("msg_") else None
    tenant = session.info.get("tenant_id")
    if found is None or (tenant is not None and found.tenant_id != tenant):
        raise NotFound("no such webhook message", code="webhook_message_not_found")
    return found


def messages_of_tenant(
    tenant_id: str, *, subject_id: str | None = None, event_type: str | None = None, seq: int | None = None
) -> Any:
    """The tenant's messages to every endpoint: one event's (``subject_id`` and ``seq``), or
    a job's or run's, or one type's."""
    stmt = select(WebhookMessage).where(WebhookMessage.tenant_id == tenant_id)
    if subject_id:
        stmt = stmt.where(WebhookMessage.subject_id == subject_id)
    if event_type:
        stmt = stmt.where(WebhookMessage.event_type == event_type)
    if seq is not None:
        stmt = stmt.where(WebhookMessage.seq == seq)
    return stmt


def messages(endpoint: WebhookEndpoint, *, subject_id: str | None = None, status: str | None = None) -> Any:
    stmt = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint.id)
    if subject_id:
        stmt = stmt.where(WebhookMessage.subject_id == subject_id)
    if status:
        stmt = stmt.where(WebhookMessage.status == status)
    return stmt


def attempts(session: Session, message_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {m: [] for m in message_ids}
    if message_ids:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.message_id.in_(message_ids))
            .order_by(WebhookAttempt.id)
        ):
            found[attempt.message_id].append(attempt)
    return found


def redeliver(session: Session, endpoint: WebhookEndpoint | None, *, message_id: str | None = None,
              since: datetime | None = None) -> list[str]:  # fmt: skip
    """Send one message again (of ``endpoint``, or of any of the caller's endpoints when it
    is None), or every message of ``endpoint`` since a time: each starts a new round of
    attempts now, under the same ``webhook-id`` (receivers de-duplicate on it)."""
    stmt = update(WebhookMessage)
    if endpoint is None:
        if message_id is None:
            raise ValueError("redeliver: a message id, or an endpoint")
        stmt = stmt.where(WebhookMessage.id == message_of_tenant(session, message_id).id)
    elif message_id is not None:
        stmt = stmt.where(WebhookMessage.id == get_message(session, endpoint, message_id).id)
    else:
        stmt = stmt.where(WebhookMessage.endpoint_id == endpoint.id)
    if since is not None:
        stmt = stmt.where(WebhookMessage.created_at >= since)
    now = clock.now()
    ids = [
        row.id
        for row in session.execute(
            stmt.values(status=PENDING, attempts=0, next_attempt_at=now, locked_until=None, lock_token=None)
            .returning(WebhookMessage.id)
            .execution_options(synchronize_session=False)
        )
    ]
    session.info.setdefault("webhook_outbox", []).extend(ids)
    return ids


#: Why the platform turned an endpoint off, as the tenant is told.
DISABLED_BECAUSE = {
    "gone": "its receiver answered 410 Gone",
    "failing": "every delivery to it has failed for days",
}


def notices(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """What the tenant must be told: each of its endpoints the platform turned off, until it
    is turned on again or deleted (``GET /v1/account`` lists them; every page shows them)."""
    rows = session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.tenant_id == tenant_id,
            WebhookEndpoint.subject_id.is_(None),
            WebhookEndpoint.enabled.is_(False),
            WebhookEndpoint.disabled_reason.is_not(None),
        )
        .order_by(WebhookEndpoint.updated_at.desc())
        .limit(20)
    )
    return [
        {
            "kind": "webhook_endpoint_disabled",
            "endpoint_id": e.id,
            "url": e.url,
            "reason": e.disabled_reason,
            "message": f"The webhook endpoint {e.url} was turned off: "
            f"{DISABLED_BECAUSE.get(str(e.disabled_reason), str(e.disabled_reason))}. "
            "Fix the receiver, then turn it on again; nothing is sent to it meanwhile.",
            "at": e.updated_at.isoformat(),
        }
        for e in rows
    ]


def to_dict(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": _iso(endpoint.failing_since),
        "created_at": _iso(endpoint.created_at),
        "updated_at": _iso(endpoint.updated_at),
    }
    if secret:
        out.update(secret_dict(endpoint))
    return out


def secret_dict(holder: WebhookEndpoint | WebhookSigningKey) -> dict[str, Any]:
    now = clock.now()
    overlapping = holder.previous_until is not None and holder.previous_until > now
    return {
        "secret": holder.secret,
        "previous_secret": holder.previous_secret if overlapping else None,
        "previous_expires_at": _iso(holder.previous_until) if overlapping else None,
    }


def message_dict(message: WebhookMessage, tries: list[WebhookAttempt] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": message.id,
        "object": "webhook_message",
        "endpoint_id": message.endpoint_id,
        "type": message.event_type,
        "seq": message.seq,
        "subject_id": message.subject_id,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": _iso(message.next_attempt_at) if message.status == PENDING else None,
        "created_at": _iso(message.created_at),
        "delivered_at": _iso(message.delivered_at),
        "payload": message.payload,
    }
    if tries is not None:
        out["log"] = [attempt_dict(a) for a in tries]
    return out


def attempt_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "at": _iso(attempt.at),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
        "response_body": attempt.response_body,
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def parse_job_webhook(raw: Any, *, allow_loopback: bool, field: str = "webhook") -> dict[str, Any] | None:
    """The ``webhook`` of a job, batch item or workflow run: ``{url, events?}``, or None."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"url", "events"} or "url" not in raw:
        raise ValidationError("webhook must be an object {url, events?}", field=field)
    return {
        "url": check_url(raw["url"], allow_loopback=allow_loopback, field=f"{field}.url"),
        "events": check_events(raw.get("events"), field=f"{field}.events"),
    }


def attach(session: Session, tenant_id: str, subject_id: str, spec: dict[str, Any]) -> WebhookEndpoint:
    """The per-job webhook of a job or run made in this transaction; the events it already
    has (``job.created``, ``workflow_run.started``) are sent to it too."""
    from pipelines.models import JobEvent
    from pipelines.workflows.models import WorkflowEvent

    job_signing_key(session, tenant_id)
    hook = WebhookEndpoint(
        tenant_id=tenant_id, url=spec["url"], events=spec["events"], subject_id=subject_id, description=""
    )
    with changing(session, tenant_id):
        session.add(hook)
    if subject_id.startswith("run_"):
        for run_event in session.scalars(
            select(WorkflowEvent).where(WorkflowEvent.run_id == subject_id).order_by(WorkflowEvent.id)
        ):
            kind = outbox.RUN_EVENTS.get(run_event.kind)
            if kind is not None and (not hook.events or kind in hook.events):
                body = {
                    "run_id": subject_id,
                    "node": run_event.node,
                    "item": run_event.item,
                    **run_event.data,
                }
                outbox.record(
                    session,
                    tenant_id,
                    kind,
                    body,
                    seq=run_event.id,
                    subject_id=subject_id,
                    endpoint_id=hook.id,
                )
        return hook
    for job_event in session.scalars(
        select(JobEvent).where(JobEvent.job_id == subject_id).order_by(JobEvent.id)
    ):
        kind = outbox.JOB_EVENTS.get(job_event.kind)
        if kind is not None and (not hook.events or kind in hook.events):
            body = {
                "job_id": subject_id,
                "status": job_event.status,
                "attempt": job_event.attempt,
                **job_event.data,
            }
            outbox.record(
                session, tenant_id, kind, body, seq=job_event.id, subject_id=subject_id, endpoint_id=hook.id
            )
    return hook


def job_webhook_of(session: Session, subject_id: str) -> dict[str, Any] | None:
    """``{url, events}`` of a job's or run's per-job webhook, or None."""
    hook = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.subject_id == subject_id).limit(1))
    return None if hook is None else {"url": hook.url, "events": list(hook.events), "enabled": hook.enabled}
