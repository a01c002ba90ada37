"""Delivering one message, and finding the messages due.

`deliver` runs three short steps, the HTTP call outside any transaction:

1. claim: the message is still pending and due, its endpoint is enabled and has fewer than
   ``concurrency`` deliveries under way (counted in the claiming statement, with the endpoint
   locked, so the cap is exact); it is locked for this delivery (a fresh
   ``lock_token``, until the deadline plus a margin) and its attempt counted;
2. send it, signed, with `safehttp.post` (refused targets, timeouts and errors are answers
   too);
3. record the attempt in the log and the outcome on the message, if it still holds the lock:
   - a 2xx: delivered (and the endpoint is no longer failing);
   - a 410: the receiver is gone: the endpoint is disabled and the message failed;
   - anything else: the next attempt is due after the retry schedule's next delay, with
     jitter, or the message has failed once the schedule is spent; an endpoint whose
     attempts have all failed for ``disable_after`` seconds is disabled and the tenant's
     other endpoints are sent ``webhook_endpoint.disabled``.

A delivery that dies at any point leaves a pending message whose lock expires: the sweep
(`due`) sends it again. Receivers may therefore see a message twice (at-least-once); its
``webhook-id`` is the same every time.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import new_id, transaction
from pipelines.webhooks import endpoints, outbox, safehttp, signing
from pipelines.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookSigningKey,
)

log = logging.getLogger("faktry.webhooks")

#: How much of an answer the log keeps.
LOGGED_BODY = 1024


@dataclass(frozen=True)
class Policy:
    limits: safehttp.Limits = field(default_factory=safehttp.Limits)
    #: Seconds to wait after the 1st, 2nd, … failed attempt; once spent, the message fails.
    schedule: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 21600, 28800, 28800)
    #: Each wait is the schedule's ± this fraction, at random.
    jitter: float = 0.2
    #: An endpoint whose attempts all failed for this long is disabled.
    disable_after: float = 5 * 24 * 3600.0
    #: Deliveries under way to one endpoint at most.
    concurrency: int = 4
    #: How many due messages one sweep takes, and at most how many of one tenant.
    sweep_batch: int = 500
    sweep_per_tenant: int = 50
    resolve: safehttp.Resolver = safehttp.system_resolve

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Policy:
        values: dict[str, Any] = {
            "limits": safehttp.Limits(
                connect_timeout=settings.webhook_connect_timeout,
                read_timeout=settings.webhook_read_timeout,
                total_timeout=settings.webhook_total_timeout,
                max_body=settings.webhook_max_response_bytes,
                allow_loopback=settings.webhook_allow_loopback,
            ),
            "schedule": parse_schedule(settings.webhook_retry_schedule),
            "jitter": settings.webhook_retry_jitter,
            "disable_after": settings.webhook_disable_after_seconds,
            "concurrency": settings.webhook_endpoint_concurrency,
            "sweep_batch": settings.webhook_sweep_batch,
            "sweep_per_tenant": settings.webhook_sweep_per_tenant,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def lock_seconds(self) -> float:
        return self.limits.total_timeout + 30.0

    def wait(self, attempts: int) -> float | None:
        """Seconds before the next attempt after ``attempts`` failed ones, or None when spent."""
        if attempts > len(self.schedule):
            return None
        base = self.schedule[attempts - 1]
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


def parse_schedule(raw: str) -> tuple[float, ...]:
    try:
        schedule = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("FAKTRY_WEBHOOK_RETRY_SCHEDULE: comma-separated seconds") from None
    if not schedule or any(s < 0 for s in schedule):
        raise ValueError("FAKTRY_WEBHOOK_RETRY_SCHEDULE: at least one delay, none negative")
    return schedule


@dataclass(frozen=True)
class Outcome:
    #: delivered, retry, failed, or skipped (not due, taken, disabled, or the endpoint busy)
    status: str
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class _Claim:
    message_id: str
    tenant_id: str
    endpoint_id: str
    url: str
    keys: tuple[str, ...]
    body: bytes


def deliver(sessions: sessionmaker[Session], policy: Policy, message_id: str) -> Outcome:
    token = new_id("lck")
    with transaction(sessions) as session:
        claim = _claim(session, policy, message_id, token)
    if claim is None:
        return Outcome("skipped")
    timestamp = int(clock.now().timestamp())
    headers = signing.headers(claim.message_id, timestamp, claim.body, claim.keys)
    status: int | None = None
    error: str | None = None
    answer = b""
    started = time.monotonic()
    try:
        got = safehttp.post(claim.url, claim.body, headers, policy.limits, policy.resolve)
        status, answer = got.status, got.body
    except safehttp.Refused as refused:
        error = f"{refused.code}: {refused}"
    except TimeoutError:
        error = "timeout"
    except (OSError, http.client.HTTPException) as err:
        error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    latency = int((time.monotonic() - started) * 1000)
    with transaction(sessions) as session:
        return _record(session, policy, claim, token, status, error, answer, latency)


def signing_keys(session: Session, endpoint: WebhookEndpoint, now: datetime) -> tuple[str, ...]:
    """The secrets that sign a delivery to ``endpoint`` now: its secret (or the tenant's
    job-webhook secret), and the previous one while it overlaps."""
    holder: WebhookEndpoint | WebhookSigningKey | None = endpoint
    if endpoint.secret is None:
        holder = session.get(WebhookSigningKey, endpoint.tenant_id)
    if holder is None or holder.secret is None:
        return ()
    keys = [holder.secret]
    if holder.previous_secret and holder.previous_until is not None and holder.previous_until > now:
        keys.append(holder.previous_secret)
    return tuple(keys)


def _claim(session: Session, policy: Policy, message_id: str, token: str) -> _Claim | None:
    now = clock.now()
    found = session.execute(
        select(WebhookMessage, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
        .where(WebhookMessage.id == message_id)
    ).first()
    if found is None:
        return None
    message, endpoint = found[0], found[1]
    if message.status != PENDING or message.next_attempt_at > now or not endpoint.enabled:
        return None
    if message.locked_until is not None and message.locked_until > now:
        return None
    # The endpoint's deliveries under way are counted by the claim itself, with the endpoint's
    # row locked (PostgreSQL) or under the database's one writer (SQLite), so two claims at
    # once cannot both take the last place.
    session.execute(select(WebhookEndpoint.id).where(WebhookEndpoint.id == endpoint.id).with_for_update())
    under_way = (
        select(func.count())
        .select_from(WebhookMessage)
        .where(WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.locked_until > now)
        .scalar_subquery()
    )
    taken = session.execute(
        update(WebhookMessage)
        .where(
            WebhookMessage.id == message_id,
            WebhookMessage.status == PENDING,
            or_(WebhookMessage.locked_until.is_(None), WebhookMessage.locked_until <= now),
            under_way < policy.concurrency,
        )
        .values(
            locked_until=now + timedelta(seconds=policy.lock_seconds),
            lock_token=token,
            attempts=WebhookMessage.attempts + 1,
        )
        .returning(WebhookMessage.id)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        return None
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _Claim(
        message.id, message.tenant_id, endpoint.id, endpoint.url, signing_keys(session, endpoint, now), body
    )


def _record(
    session: Session,
    policy: Policy,
    claim: _Claim,
    token: str,
    status: int | None,
    error: str | None,
    answer: bytes,
    latency: int,
) -> Outcome:
    now = clock.now()
    session.add(
        WebhookAttempt(
            tenant_id=claim.tenant_id,
            message_id=claim.message_id,
            endpoint_id=claim.endpoint_id,
            at=now,
            status_code=status,
            error=error[:200] if error else None,
            latency_ms=latency,
            response_body=answer[:LOGGED_BODY].decode("utf-8", "replace"),
        )
    )
    message = session.get(WebhookMessage, claim.message_id, with_for_update=True)
    endpoint = session.get(WebhookEndpoint, claim.endpoint_id)
    if message is None or endpoint is None or message.lock_token != token:
        return Outcome("skipped")  # deleted meanwhile, or a later delivery took it over
    message.locked_until = None
    message.lock_token = None
    if status is not None and 200 <= status < 300:
        message.status = DELIVERED
        message.delivered_at = now
        endpoint.failing_since = None
        return Outcome(DELIVERED)
    if status == 410:
        message.status = FAILED
        _disable(session, endpoint, "gone", now)
        return Outcome(FAILED)
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif (now - endpoint.failing_since).total_seconds() >= policy.disable_after:
        _disable(session, endpoint, "failing", now)
    wait = policy.wait(message.attempts)
    if wait is None:
        message.status = FAILED
        return Outcome(FAILED)
    message.next_attempt_at = now + timedelta(seconds=wait)
    return Outcome("retry", message.next_attempt_at)


def _disable(session: Session, endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
    if not endpoint.enabled:
        return
    with endpoints.changing(session, endpoint.tenant_id):
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        endpoint.updated_at = now
    log.warning("webhook endpoint %s disabled (%s)", endpoint.id, reason)
    if endpoint.subject_id is None:  # the tenant hears of it on its other endpoints
        outbox.record(
            session,
            endpoint.tenant_id,
            outbox.ENDPOINT_DISABLED,
            {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason},
            at=now,
        )


def due(sessions: sessionmaker[Session], policy: Policy) -> list[str]:
    """The ids of pending messages due now, whose endpoint is enabled and not locked; taken
    in turn from each tenant (at most ``sweep_per_tenant`` each) so that one tenant's
    backlog does not hold up the others'."""
    now = clock.now()
    with transaction(sessions) as session:
        rows = session.execute(
            select(WebhookMessage.id, WebhookMessage.tenant_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
            .where(
                WebhookMessage.status == PENDING,
                WebhookMessage.next_attempt_at <= now,
                or_(WebhookMessage.locked_until.is_(None), WebhookMessage.locked_until <= now),
                WebhookEndpoint.enabled.is_(True),
            )
            .order_by(WebhookMessage.next_attempt_at)
            .limit(policy.sweep_batch)
        ).all()
    per_tenant: dict[str, list[str]] = defaultdict(list)
    for message_id, tenant_id in rows:
        if len(per_tenant[tenant_id]) < policy.sweep_per_tenant:
            per_tenant[tenant_id].append(message_id)
    order: list[str] = []
    queues = list(per_tenant.values())
    for i in range(max((len(q) for q in queues), default=0)):
        order.extend(q[i] for q in queues if i < len(q))
    return order


def prune(sessions: sessionmaker[Session], keep_seconds: float, *, limit: int = 1000) -> int:
    """Forget messages (and their attempts) that ended more than ``keep_seconds`` ago, and
    the per-job webhooks left with no message; at most ``limit`` messages a pass. Returns how
    many messages went."""
    before = clock.now() - timedelta(seconds=keep_seconds)
    with transaction(sessions) as session:
        old = list(
            session.scalars(
                select(WebhookMessage.id)
                .where(WebhookMessage.status != PENDING, WebhookMessage.created_at < before)
                .limit(limit)
            )
        )
        if old:
            session.execute(delete(WebhookAttempt).where(WebhookAttempt.message_id.in_(old)))
            session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(old)))
        session.execute(
            delete(WebhookEndpoint).where(
                WebhookEndpoint.subject_id.is_not(None),
                WebhookEndpoint.created_at < before,
                ~select(WebhookMessage.id).where(WebhookMessage.endpoint_id == WebhookEndpoint.id).exists(),
            )
        )
    return len(old)
