"""The webhook tables: endpoints, the outbox of messages, and the log of delivery attempts.

- ``webhook_endpoints``: where a tenant wants events sent (a URL, the event types, its
  signing secret and, during a rotation, the previous secret until ``previous_until``). A
  row with a ``subject_id`` is the ``webhook`` given with one job or workflow run: it gets
  that subject's events only, and is signed with the tenant's job-webhook secret.
- ``webhook_messages``: the outbox. One row per (event, endpoint), written in the
  transaction that wrote the event; its id is the ``webhook-id`` header, so every retry and
  every redelivery carries the same id and a receiver de-duplicates on it.
- ``webhook_attempts``: one row per HTTP attempt (status code or error, latency, the first
  KiB of the response body).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


class WebhookEndpoint(Base, TenantOwned):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_tenant_listing", "tenant_id", "created_at", "id"),
        Index("ix_webhook_endpoints_subject", "subject_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whe"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    #: Event types to send; empty means every type.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Why it was turned off by the platform: ``gone`` (answered 410) or ``failing``.
    disabled_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    #: ``whsec_...``; None for a per-job webhook (signed with the tenant's job-webhook secret).
    secret: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_until: Mapped[datetime | None] = mapped_column(default=None)
    #: The job or workflow run a per-job webhook is for; None for a tenant's endpoint.
    subject_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: Since when every attempt has failed (None once one succeeds).
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class WebhookMessage(Base, TenantOwned):
    __tablename__ = "webhook_messages"
    __table_args__ = (
        # The sweep: pending messages, oldest due first.
        Index("ix_webhook_messages_due", "status", "next_attempt_at"),
        Index("ix_webhook_messages_endpoint_listing", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_messages_subject", "subject_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("msg"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(60))
    #: The event's sequence number (its row id in ``job_events`` or ``workflow_events``).
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The job or run the event is about.
    subject_id: Mapped[str | None] = mapped_column(String(40), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    #: Attempts in the current round (a manual redelivery starts a new round).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=clock.now)
    #: Held by one delivery until then (its ``lock_token``); a lost delivery's hold expires.
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    lock_token: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookAttempt(Base, TenantOwned):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_message", "message_id", "id"),
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    #: The HTTP status, or None when no answer came (``error`` says why).
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(200), default=None)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    #: The first KiB of the answer.
    response_body: Mapped[str] = mapped_column(Text, default="")


class WebhookSigningKey(Base, TenantOwned):
    """The secret a tenant's per-job webhooks are signed with (one per tenant)."""

    __tablename__ = "webhook_signing_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
