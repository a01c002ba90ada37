"""Sending one mail of the outbox, and finding the mails due.

`deliver` runs three short steps, the SMTP exchange outside any transaction:

1. claim: one fenced UPDATE takes the message if it is still pending, due and not held by
   another sender: it is held for this sender (a fresh ``lock_token``, until the SMTP
   deadlines plus a margin) and its attempt counted. Two senders given the same message
   (the kick and the sweep) never both send it while the first one lives;
2. send it with `smtplib` (`send_smtp`), or, with no SMTP host configured, *keep* it: its
   text goes to the log (``faktry.mail``, INFO, links included) and it stays in the outbox
   for ``faktry mail list`` / ``faktry mail show``;
3. record the outcome, if the message is still held with this sender's token:
   - accepted by the server (or kept): ``sent``, with its ``transport``;
   - refused (any 4xx or 5xx), the server unreachable or too slow, or any other error on
     the way (logged with its traceback): the next attempt is due after the retry
     schedule's next delay, or the message is ``failed`` once the schedule is spent (the
     attempts are capped at one more than its delays).

A sender that dies between its claim and its record leaves a pending message whose hold
expires: the sweep (`due`) sends it again, so a mail is sent at least once; twice only if
a sender died after the server accepted it and before the record. Every attempt carries
the same ``Message-ID``, so a mail client shows such a duplicate once.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import new_id, transaction
from pipelines.mail.models import FAILED, PENDING, SENT, AccountToken, MailMessage

log = logging.getLogger("faktry.mail")

KEPT = "kept"
SMTP = "smtp"


@dataclass(frozen=True)
class Smtp:
    """Where and how mail is handed over: an SMTP server (``tls`` is ``starttls``, ``tls``
    or ``none``) and the From address."""

    host: str
    port: int = 587
    tls: str = "starttls"
    username: str = ""
    password: str = ""
    sender: str = "faktry <no-reply@faktry.local>"
    timeout: float = 10.0


@dataclass(frozen=True)
class Policy:
    #: None keeps mail in the outbox instead of sending it (no SMTP host configured).
    smtp: Smtp | None = None
    #: Seconds to wait after the 1st, 2nd, … failed attempt; once spent, the mail fails.
    schedule: tuple[float, ...] = (30, 120, 600, 1800, 3600, 7200)
    #: How many due mails one sweep takes.
    sweep_batch: int = 200

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Policy:
        smtp = None
        if settings.mail_smtp_host:
            smtp = Smtp(
                host=settings.mail_smtp_host,
                port=settings.mail_smtp_port,
                tls=settings.mail_smtp_tls,
                username=settings.mail_smtp_username,
                password=settings.mail_smtp_password,
                sender=settings.mail_from,
                timeout=settings.mail_timeout,
            )
        values: dict[str, Any] = {
            "smtp": smtp,
            "schedule": parse_schedule(settings.mail_retry_schedule),
            "sweep_batch": settings.mail_sweep_batch,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def lock_seconds(self) -> float:
        # Connect, greet, TLS, auth, envelope, data and quit each wait at most a timeout.
        return (self.smtp.timeout if self.smtp else 1.0) * 8 + 30.0

    def wait(self, attempts: int) -> float | None:
        """Seconds before the next attempt after ``attempts`` failed ones, or None when spent."""
        if attempts > len(self.schedule):
            return None
        return self.schedule[attempts - 1]


def parse_schedule(raw: str) -> tuple[float, ...]:
    try:
        schedule = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("FAKTRY_MAIL_RETRY_SCHEDULE: comma-separated seconds") from None
    if any(s < 0 for s in schedule):
        raise ValueError("FAKTRY_MAIL_RETRY_SCHEDULE: no delay may be negative")
    return schedule


@dataclass(frozen=True)
class Outcome:
    #: sent, retry, failed, or skipped (not due, taken by another sender, or gone)
    status: str
    next_attempt_at: Any = None


@dataclass(frozen=True)
class _Claim:
    id: str
    to: str
    subject: str
    text: str
    html: str
    attempts: int


def deliver(sessions: sessionmaker[Session], policy: Policy, message_id: str) -> Outcome:
    """Send (or keep) one mail of the outbox, if it is due and no one else is sending it."""
    token = new_id("lck")
    with transaction(sessions) as session:
        claim = _claim(session, policy, message_id, token)
    if claim is None:
        return Outcome("skipped")
    error: str | None = None
    if policy.smtp is None:
        log.info(
            "mail %s kept (no SMTP host configured) to %s: %s\n%s",
            claim.id, claim.to, claim.subject, claim.text,
        )  # fmt: skip
    else:
        try:
            send_smtp(policy.smtp, claim)
        except (OSError, smtplib.SMTPException) as err:
            error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            log.warning("mail %s to %s not sent (attempt %d): %s", claim.id, claim.to, claim.attempts, error)
        except Exception as err:  # a mail that cannot even be written: a failed attempt too
            error = f"{type(err).__name__}: {err}"
            log.exception("mail %s to %s could not be sent (attempt %d)", claim.id, claim.to, claim.attempts)
    with transaction(sessions) as session:
        return _record(session, policy, claim, token, error)


def send_smtp(smtp: Smtp, claim: _Claim) -> None:
    """Hand one mail to the SMTP server; raises `smtplib.SMTPException` when it refuses,
    `OSError` when it cannot be reached or does not answer within the timeout."""
    mail = EmailMessage()
    mail["From"] = smtp.sender
    mail["To"] = claim.to
    mail["Subject"] = claim.subject
    mail["Date"] = formatdate(clock.now().timestamp())
    # The same on every attempt: a mail sent twice (see the module's docstring) is one mail.
    mail["Message-ID"] = f"<{claim.id}@faktry>"
    mail.set_content(claim.text)
    mail.add_alternative(claim.html, subtype="html")
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.tls == "tls":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        if smtp.tls == "starttls":
            client.starttls(context=context)
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.send_message(mail)


def _claim(session: Session, policy: Policy, message_id: str, token: str) -> _Claim | None:
    now = clock.now()
    taken = session.execute(
        update(MailMessage)
        .where(
            MailMessage.id == message_id,
            MailMessage.status == PENDING,
            MailMessage.next_attempt_at <= now,
            or_(MailMessage.locked_until.is_(None), MailMessage.locked_until <= now),
        )
        .values(
            locked_until=now + timedelta(seconds=policy.lock_seconds),
            lock_token=token,
            attempts=MailMessage.attempts + 1,
        )
        .returning(
            MailMessage.id,
            MailMessage.to_address,
            MailMessage.subject,
            MailMessage.text_body,
            MailMessage.html_body,
            MailMessage.attempts,
        )
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        return None
    return _Claim(*taken)


def _record(session: Session, policy: Policy, claim: _Claim, token: str, error: str | None) -> Outcome:
    now = clock.now()
    mine = (MailMessage.id == claim.id, MailMessage.lock_token == token)
    if error is None:
        transport = SMTP if policy.smtp is not None else KEPT
        values: dict[str, Any] = {"status": SENT, "sent_at": now, "transport": transport, "last_error": None}
        outcome = Outcome(SENT)
    else:
        wait = policy.wait(claim.attempts)
        if wait is None:
            values = {"status": FAILED, "last_error": error[:300]}
            outcome = Outcome(FAILED)
            log.error("mail %s to %s failed after %d attempts: %s", claim.id, claim.to, claim.attempts, error)
        else:
            at = now + timedelta(seconds=wait)
            values = {"next_attempt_at": at, "last_error": error[:300]}
            outcome = Outcome("retry", at)
    done = session.execute(
        update(MailMessage)
        .where(*mine)
        .values(locked_until=None, lock_token=None, **values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(done, "rowcount", 0):
        return Outcome("skipped")  # deleted meanwhile (the account was), or its hold expired
    return outcome


def due(sessions: sessionmaker[Session], policy: Policy) -> list[str]:
    """The ids of pending mails due now and held by no sender, oldest due first."""
    now = clock.now()
    with transaction(sessions) as session:
        return list(
            session.scalars(
                select(MailMessage.id)
                .where(
                    MailMessage.status == PENDING,
                    MailMessage.next_attempt_at <= now,
                    or_(MailMessage.locked_until.is_(None), MailMessage.locked_until <= now),
                )
                .order_by(MailMessage.next_attempt_at)
                .limit(policy.sweep_batch)
            )
        )


def prune(sessions: sessionmaker[Session], keep_seconds: float, *, limit: int = 1000) -> int:
    """Forget mails that ended (sent, kept or failed) more than ``keep_seconds`` ago, at most
    ``limit`` a pass, and the tokens of links that expired that long ago. Returns how many
    mails went."""
    before = clock.now() - timedelta(seconds=keep_seconds)
    with transaction(sessions) as session:
        old = list(
            session.scalars(
                select(MailMessage.id)
                .where(MailMessage.status != PENDING, MailMessage.created_at < before)
                .limit(limit)
            )
        )
        if old:
            session.execute(delete(MailMessage).where(MailMessage.id.in_(old)))
        session.execute(delete(AccountToken).where(AccountToken.expires_at < before))
    return len(old)
