"""The account mails, and the single-use tokens their links carry.

Every function takes the caller's session and queues its mail in the caller's transaction
(`pipelines.mail.outbox.queue`); none commits.

- Email verification: `send_verification` (at sign-up, and again on request) issues a
  token valid ``email_verification_hours`` and mails ``/verify-email?token=…``;
  `verify_email` spends it and marks the address verified.
- Password reset: `request_password_reset` mails ``/password-reset/confirm?token=…`` (valid
  ``password_reset_minutes``) when the address has an account, and does nothing otherwise:
  the caller answers the same either way. `reset_password` spends the token, sets the
  password, spends the person's other reset tokens and ends every session they have.
- `signup_attempt`: the owner of an address someone tried to sign up with again is told,
  with links to log in and to reset the password.
- `security_notice`: the owners of an account hear of a change to it (an API key created,
  the password reset by link). Once accounts have members, the service that adds one calls
  it the same way, in the transaction that writes the member ("a member was added").
- `policy_change`: one mail per active person of every account, once per effective date.
- `invitation`: the link to join an account (`pipelines.invitations` issues its token).

A token is 256 random bits in the link; only its SHA-256 is stored (`AccountToken`). It is
spent by one conditional UPDATE (unused, unexpired, of the right purpose), so it works once
however many requests present it at the same time. A bad, used or expired token is refused
with one answer, `InvalidToken` (400 ``invalid_token``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import FaktryError
from faktry.tenancy import Tenant, User, end_user_sessions, normalize_email
from pipelines.mail import outbox
from pipelines.mail.models import (
    INVITATION,
    PASSWORD_RESET,
    POLICY_CHANGE,
    SECURITY_NOTICE,
    SIGNUP_ATTEMPT,
    VERIFY_EMAIL,
    AccountToken,
    MailMessage,
)

TOKEN_BYTES = 32
#: The privacy policy promises this much notice of a change.
POLICY_NOTICE_DAYS = 30


class InvalidToken(FaktryError):
    code = "invalid_token"
    status = 400


@dataclass(frozen=True)
class Links:
    """What the mails' links are built from: the public URL, and how long tokens last."""

    public_url: str
    verification: timedelta = timedelta(hours=48)
    reset: timedelta = timedelta(minutes=30)

    @classmethod
    def from_settings(cls, settings: Any) -> Links:
        return cls(
            public_url=settings.public_url,
            verification=timedelta(hours=settings.email_verification_hours),
            reset=timedelta(minutes=settings.password_reset_minutes),
        )

    def to(self, path: str, token: str | None = None) -> str:
        return f"{self.public_url}{path}" + (f"?token={quote(token)}" if token else "")


def _hash(token: str) -> str:
    # 256 random bits: a plain SHA-256 of them cannot be reversed or guessed.
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(session: Session, user: User, purpose: str, valid: timedelta) -> str:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = clock.now()
    session.add(
        AccountToken(
            tenant_id=user.tenant_id, user_id=user.id, purpose=purpose, token_hash=_hash(token),
            created_at=now, expires_at=now + valid,
        )
    )  # fmt: skip
    session.flush()
    return token


def _spend(session: Session, token: Any, purpose: str) -> str:
    """Spend a token of ``purpose``: the id of its person, or `InvalidToken`."""
    refused = InvalidToken("this link is not valid: it was used already, has expired, or is wrong")
    if not isinstance(token, str) or not token or len(token) > 200:
        raise refused
    now = clock.now()
    spent = session.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == _hash(token),
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken.user_id)
        .execution_options(synchronize_session=False)
    ).first()
    if spent is None:
        raise refused
    return str(spent[0])


def send_verification(session: Session, links: Links, user: User) -> str:
    """Mail the person a link that verifies their address; returns the mail's id."""
    token = _issue(session, user, VERIFY_EMAIL, links.verification)
    context = {
        "email": user.email, "link": links.to("/verify-email", token),
        "hours": round(links.verification.total_seconds() / 3600),
    }  # fmt: skip
    return outbox.queue(session, to=user.email, kind=VERIFY_EMAIL, context=context, tenant_id=user.tenant_id)


def verify_email(session: Session, token: Any) -> User:
    """Spend a verification token: its person's address is verified (kept if it was)."""
    user = session.get(User, _spend(session, token, VERIFY_EMAIL))
    if user is None:
        raise InvalidToken("this link is not valid: it was used already, has expired, or is wrong")
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()
    session.flush()
    return user


def request_password_reset(session: Session, links: Links, email: str) -> str | None:
    """Mail a reset link to ``email`` if it has an account (the mail's id), else nothing."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        return None
    token = _issue(session, user, PASSWORD_RESET, links.reset)
    context = {
        "email": user.email, "link": links.to("/password-reset/confirm", token),
        "minutes": round(links.reset.total_seconds() / 60),
    }  # fmt: skip
    return outbox.queue(
        session, to=user.email, kind=PASSWORD_RESET, context=context, tenant_id=user.tenant_id
    )


def reset_password(session: Session, token: Any, password_hash: str) -> User:
    """Spend a reset token: its person gets the (already hashed) password, their other reset
    links stop working, and every session they have ends. The address is verified too: the
    person just proved they read its mail."""
    user = session.get(User, _spend(session, token, PASSWORD_RESET))
    if user is None:
        raise InvalidToken("this link is not valid: it was used already, has expired, or is wrong")
    now = clock.now()
    user.password_hash = password_hash
    if user.email_verified_at is None:
        user.email_verified_at = now
    session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == PASSWORD_RESET,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    end_user_sessions(session, user.id)
    session.flush()
    return user


def signup_attempt(session: Session, links: Links, email: str) -> str | None:
    """Tell the owner of ``email`` that someone tried to sign up with it (None: no such
    account, as when a concurrent sign-up's row is not visible yet)."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        return None
    context = {
        "email": user.email,
        "login_link": links.to("/login"),
        "reset_link": links.to("/password-reset"),
    }
    return outbox.queue(
        session, to=user.email, kind=SIGNUP_ATTEMPT, context=context, tenant_id=user.tenant_id
    )


def security_notice(
    session: Session, links: Links, tenant_id: str, event: str, detail: str = ""
) -> list[str]:
    """Tell the owners of the account that ``event`` happened to it (``an API key was
    created``), with ``detail``; returns the mails' ids."""
    owners = session.scalars(
        select(User).where(User.tenant_id == tenant_id, User.role == "owner").order_by(User.created_at)
    ).all()
    return [
        outbox.queue(
            session,
            to=owner.email,
            kind=SECURITY_NOTICE,
            tenant_id=tenant_id,
            context={"email": owner.email, "event": event, "detail": detail, "link": links.to("/login")},
        )
        for owner in owners
    ]


def policy_change(session: Session, links: Links, effective: date, summary: str) -> int:
    """Queue the notice of a privacy policy change effective on ``effective`` to every person
    of every active account; returns how many were queued. Refuses (`ValueError`) a date less
    than `POLICY_NOTICE_DAYS` ahead. Idempotent per date: a person already noticed of this
    date is not again (``dedupe_key``)."""
    if effective < clock.now().date() + timedelta(days=POLICY_NOTICE_DAYS):
        raise ValueError(f"the policy promises {POLICY_NOTICE_DAYS} days' notice: {effective} is too soon")
    summary = summary.strip()
    if not summary:
        raise ValueError("say in a sentence or two what changes (--summary)")
    prefix = f"policy:{effective.isoformat()}:"
    done = set(
        session.scalars(select(MailMessage.dedupe_key).where(MailMessage.dedupe_key.like(f"{prefix}%")))
    )
    people = session.execute(
        select(User.id, User.email, User.tenant_id)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.status == "active")
        .order_by(User.created_at, User.id)
    ).all()
    queued = 0
    for user_id, email, tenant_id in people:
        key = prefix + user_id
        if key in done:
            continue
        context = {"effective": effective.isoformat(), "summary": summary, "link": links.to("/privacy")}
        outbox.queue(
            session, to=email, kind=POLICY_CHANGE, context=context, tenant_id=tenant_id, dedupe_key=key
        )
        queued += 1
    return queued


def invitation(
    session: Session,
    links: Links,
    *,
    to: str,
    tenant_id: str,
    inviter: str,
    role: str,
    token: str,
    expires: str,
) -> str:
    """Mail the link to join the account (`pipelines.invitations`)."""
    account = session.scalar(select(Tenant.name).where(Tenant.id == tenant_id)) or "a faktry account"
    context = {
        "inviter": inviter, "account": account, "role": role, "expires": expires,
        "link": links.to("/invitations/accept", token),
    }  # fmt: skip
    return outbox.queue(session, to=to, kind=INVITATION, context=context, tenant_id=tenant_id)
