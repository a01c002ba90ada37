"""The mail outbox: a mail is a row written in the transaction that decided to send it.

`queue` renders the mail (`pipelines.mail.templates`) and writes it as a pending
`MailMessage` in the caller's transaction: it commits or rolls back with what it is about
(a sign-up, a password reset, a new API key). The ids of the mails a transaction wrote are
kept on the session and handed to the ``kick`` that `install` registered once the
transaction has committed (the fast path: the sender starts at once). Whatever the kick
loses, the scheduler's sweep of due mails finds (`pipelines.mail.sender.due`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import hand_over_at_commit, new_id
from pipelines.mail import templates
from pipelines.mail.models import KINDS, PENDING, MailMessage

log = logging.getLogger("faktry.mail")

_KICK = "mail_outbox"
_MESSAGE = insert(MailMessage)
Kick = Callable[[Sequence[str]], object]


def queue(
    session: Session,
    *,
    to: str,
    kind: str,
    context: dict[str, Any],
    tenant_id: str | None,
    dedupe_key: str | None = None,
) -> str:
    """Write one mail of ``kind`` to ``to``, rendered with ``context``, in the caller's
    transaction; it is sent once the transaction commits. Returns its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    subject, text, html = templates.render(kind, context)
    now = clock.now()
    row = {
        "id": new_id("mail"), "tenant_id": tenant_id, "to_address": to, "kind": kind, "subject": subject,
        "text_body": text, "html_body": html, "status": PENDING, "attempts": 0, "next_attempt_at": now,
        "dedupe_key": dedupe_key, "created_at": now,
    }  # fmt: skip
    session.connection().execute(_MESSAGE, [row])
    session.info.setdefault(_KICK, []).append(row["id"])
    return str(row["id"])


def install(sessions: sessionmaker[Session], kick: Kick) -> None:
    """Hand the ids of the mails each transaction of ``sessions`` wrote to ``kick`` once it
    has committed (nothing after a rollback; see `faktry.db.hand_over_at_commit`)."""
    hand_over_at_commit(sessions, _KICK, kick, log)
