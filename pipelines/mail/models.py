"""The mail tables: the outbox of messages, and the single-use tokens their links carry.

- ``mail_messages``: the outbox. One row per mail, written in the transaction that decided
  to send it (`pipelines.mail.outbox.queue`), with its rendered subject and bodies, so a
  message that committed is sent even if its process dies the instant after. ``tenant_id``
  is the account the mail is about, when there is one (a mail about an address that has no
  account yet would have none); the account's export holds its mails and its deletion
  deletes them. ``transport`` says how it left: ``smtp``, or ``kept`` when no SMTP server
  is configured (the mail stays here for the operator to read, see `faktry mail`).
  ``dedupe_key`` makes a mail that must go once (one policy-change notice per person and
  effective date) unique.
- ``account_tokens``: one row per link a mail carries (``verify_email``,
  ``password_reset``): only the SHA-256 of the token is kept, with when it expires and when
  it was used; a token works once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id

PENDING = "pending"
SENT = "sent"
FAILED = "failed"

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"  # noqa: S105  (a kind of mail, not a password)
SIGNUP_ATTEMPT = "signup_attempt"
SECURITY_NOTICE = "security_notice"
POLICY_CHANGE = "policy_change"
INVITATION = "invitation"
KINDS = (VERIFY_EMAIL, PASSWORD_RESET, SIGNUP_ATTEMPT, SECURITY_NOTICE, POLICY_CHANGE, INVITATION)
#: The purposes of an `AccountToken`.
PURPOSES = (VERIFY_EMAIL, PASSWORD_RESET)


class MailMessage(Base):
    __tablename__ = "mail_messages"
    __table_args__ = (
        # The sweep: pending messages, oldest due first.
        Index("ix_mail_messages_due", "status", "next_attempt_at"),
        Index("ix_mail_messages_tenant_listing", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mail"))
    #: The account the mail is about; None for a mail about no account.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), default=None)
    to_address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=clock.now)
    #: Held by one sender until then (its ``lock_token``); a lost sender's hold expires.
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    lock_token: Mapped[str | None] = mapped_column(String(40), default=None)
    last_error: Mapped[str | None] = mapped_column(String(300), default=None)
    #: ``smtp`` or ``kept`` once sent.
    transport: Mapped[str | None] = mapped_column(String(10), default=None)
    #: Unique when set: a mail that must be queued once (``policy:<date>:<user id>``).
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class AccountToken(Base, TenantOwned):
    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user", "user_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tok"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    #: SHA-256 (hex) of the token in the link; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
