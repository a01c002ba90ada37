"""The outbox and the SMTP sender: a refused or unreachable server leaves the mail pending
and it is tried again until the retry schedule is spent; a sender killed between the commit
and the send still gets its mail sent, once; with no SMTP host the mail is kept and its
link logged; the policy-change command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from faktry import clock
from faktry.cli import main, sweep_mail
from faktry.db import transaction
from faktry.tenancy import Tenant
from pipelines.mail import notices, outbox, sender
from pipelines.mail.models import AccountToken, MailMessage
from tests.mail.conftest import drain, free_port, mail_settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


def _queue_one(sessions, to: str = "someone@example.com", tenant_id: str | None = None) -> str:
    with transaction(sessions) as session:
        return outbox.queue(
            session, to=to, kind="security_notice", tenant_id=tenant_id,
            context={"email": to, "event": "a test", "detail": "", "link": "http://127.0.0.1:8000/login"},
        )  # fmt: skip


def _row(sessions, message_id: str) -> MailMessage:
    with transaction(sessions) as session:
        row = session.get(MailMessage, message_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_refusing_server_leaves_the_mail_pending_until_the_attempts_are_spent(
    runtime, sessions, settings, smtp
):
    message_id = _queue_one(sessions)
    policy = sender.Policy.from_settings(settings)
    smtp.refuse = "451 4.3.0 try again later"
    assert sender.deliver(sessions, policy, message_id).status == "retry"
    row = _row(sessions, message_id)
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.last_error is not None and "451" in row.last_error
    smtp.refuse = "550 5.1.1 no such mailbox"
    assert sender.deliver(sessions, policy, message_id).status == "retry"
    assert sender.deliver(sessions, policy, message_id).status == "failed"  # 3 attempts: 2 delays + 1
    row = _row(sessions, message_id)
    assert (row.status, row.attempts) == ("failed", 3) and "550" in (row.last_error or "")
    assert sender.due(sessions, policy) == []
    smtp.refuse = None
    assert sender.deliver(sessions, policy, message_id).status == "skipped"
    assert smtp.got == []


def test_a_stopped_server_is_tried_again_after_the_backoff_and_then_the_mail_goes(
    runtime, sessions, settings, smtp
):
    message_id = _queue_one(sessions)
    gone = sender.Policy.from_settings(settings.replace(mail_smtp_port=free_port(), mail_retry_schedule="60"))
    clock.freeze(clock.now())
    outcome = sender.deliver(sessions, gone, message_id)
    assert outcome.status == "retry" and outcome.next_attempt_at == clock.now() + timedelta(seconds=60)
    assert _row(sessions, message_id).status == "pending"
    # Not due before its backoff: the sweep leaves it, a stray send skips it.
    working = sender.Policy.from_settings(settings)
    assert sender.due(sessions, working) == []
    assert sender.deliver(sessions, working, message_id).status == "skipped"
    clock.advance(timedelta(seconds=61))
    assert sender.due(sessions, working) == [message_id]
    assert sender.deliver(sessions, working, message_id).status == "sent"
    row = _row(sessions, message_id)
    assert (row.status, row.attempts, row.transport) == ("sent", 2, "smtp")
    assert len(smtp.got) == 1 and smtp.got[0].message_id == f"<{message_id}@faktry>"


def test_two_senders_given_the_same_mail_send_it_once(runtime, sessions, settings, smtp):
    message_id = _queue_one(sessions)
    policy = sender.Policy.from_settings(settings)
    token = "lck_first"
    with transaction(sessions) as session:
        assert sender._claim(session, policy, message_id, token) is not None  # the first sender, mid-send
    assert sender.deliver(sessions, policy, message_id).status == "skipped"  # the second
    assert sender.due(sessions, policy) == []
    assert smtp.got == []


#: Queues one mail in a transaction and dies by SIGKILL the moment it has committed, before
#: the after-commit kick can start sending it.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from faktry.db import make_engine, make_sessionmaker, transaction
    from pipelines.mail import notices, outbox

    url, tenant_id = sys.argv[1:3]
    sessions = make_sessionmaker(make_engine(url))
    outbox.install(sessions, lambda ids: os.kill(os.getpid(), signal.SIGKILL))
    with transaction(sessions) as session:
        notices.security_notice(session, notices.Links("http://127.0.0.1:8000"), tenant_id, "a crash test")
    print("survived")
    """
)


@pytest.mark.slow
@pytest.mark.chaos
def test_a_process_killed_between_commit_and_send_still_gets_its_mail_sent_exactly_once(
    runtime, sessions, settings, smtp, tenant
):
    done = subprocess.run(
        [sys.executable, "-c", WRITER, settings.resolved_database_url, tenant.id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "survived" not in done.stdout
    assert smtp.got == []  # it died before sending

    assert drain(sessions, settings) == ["sent"]
    assert drain(sessions, settings) == []  # the next sweeps find nothing
    assert [m.to for m in smtp.got] == [[tenant.email]]
    assert "a crash test" in smtp.got[0].subject


def _invoke(settings, *args: str):
    return CliRunner().invoke(main, ["mail", *args], env=settings.to_env(), catch_exceptions=False)


def test_the_policy_change_command_refuses_short_notice_and_queues_one_mail_per_person_once(
    runtime, sessions, settings, smtp, make_tenant
):
    people = [make_tenant(), make_tenant()]
    gone = make_tenant()
    with transaction(sessions) as session:
        row = session.get(Tenant, gone.id)
        assert row is not None
        row.status = "deleted"
    today = clock.now().date()
    soon = _invoke(
        settings, "policy-change", "--effective", str(today + timedelta(days=29)), "--summary", "x"
    )
    assert soon.exit_code != 0 and "30 days" in soon.output
    effective = str(today + timedelta(days=30))
    summary = "Analytics cookies are now opt-in."
    first = _invoke(settings, "policy-change", "--effective", effective, "--summary", summary)
    assert first.exit_code == 0, first.output
    assert f"2 policy-change mails queued for {effective}" in first.output
    again = _invoke(settings, "policy-change", "--effective", effective, "--summary", summary)
    assert again.exit_code == 0 and f"0 policy-change mails queued for {effective}" in again.output
    assert drain(sessions, settings) == ["sent", "sent"]
    assert sorted(a for m in smtp.got for a in m.to) == sorted(p.email for p in people)
    assert all(summary in m.text and effective in m.subject for m in smtp.got)
    assert all(m.link("/privacy") == "http://127.0.0.1:8000/privacy" for m in smtp.got)


def test_without_an_smtp_host_mail_is_kept_logged_and_readable_with_faktry_mail(
    tmp_path, db_url, redis_namespace, caplog
):
    from web import create_app
    from workers.broker import BrokerSender, setup

    # What `faktry up` runs with: no mail settings at all.
    settings = mail_settings(tmp_path, db_url, redis_namespace, 0, mail_smtp_host="")
    runtime = setup(settings)
    try:
        app = create_app(settings, sender=BrokerSender(runtime.broker))
        client = app.test_client()
        email = "keeper@example.com"
        body = {"email": email, "password": PASSWORD, "confirm_age_16": True}
        assert client.post("/v1/signup", json=body).status_code == 202
        with caplog.at_level(logging.INFO, logger="faktry.mail"):
            assert drain(runtime.context.sessions, settings) == ["sent"]
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "faktry.mail")
        assert "kept (no SMTP host configured)" in logged
        assert "http://127.0.0.1:8000/verify-email?token=" in logged
        with transaction(runtime.context.sessions) as session:
            row = session.scalars(select(MailMessage).where(MailMessage.to_address == email)).one()
            message_id, status, transport = row.id, row.status, row.transport
        assert (status, transport) == ("sent", "kept")

        listed = _invoke(settings, "list")
        assert listed.exit_code == 0 and message_id in listed.output and "kept" in listed.output
        shown = _invoke(settings, "show", message_id)
        assert shown.exit_code == 0
        assert "/verify-email?token=" in shown.output and f"To: {email}" in shown.output
        token = shown.output.split("token=", 1)[1].split()[0]
        assert client.post("/v1/email/verify", json={"token": token}).status_code == 200
        app.extensions["faktry"].sessions.kw["bind"].dispose()
    finally:
        runtime.broker.close()
        runtime.context.sessions.kw["bind"].dispose()


def test_policy_change_is_refused_without_a_summary(runtime, sessions):
    with transaction(sessions) as session, pytest.raises(ValueError, match="summary"):
        notices.policy_change(
            session, notices.Links("http://x"), clock.now().date() + timedelta(days=40), "  "
        )


def test_a_mail_is_kicked_to_the_mail_queue_after_commit_and_sent_by_a_worker(
    app, client, worker, smtp, sessions, settings
):
    email = "kicked@example.com"
    body = {"email": email, "password": PASSWORD, "confirm_age_16": True}
    assert client.post("/v1/signup", json=body).status_code == 202
    deadline = time.monotonic() + 20
    while not smtp.to(email) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.to(email)) == 1
    worker.join()
    assert sender.due(sessions, sender.Policy.from_settings(settings)) == []


def test_the_scheduler_sweep_sends_the_mails_whose_kick_was_lost(runtime, settings, smtp):
    from faktry.db import make_engine, make_sessionmaker
    from workers.broker import BrokerSender

    # A process with no kick installed: its mail waits for the sweep.
    bare = make_sessionmaker(make_engine(settings.resolved_database_url))
    message_id = _queue_one(bare)
    assert sweep_mail(settings, bare, BrokerSender(runtime.broker)) == 1
    assert sender.deliver(bare, sender.Policy.from_settings(settings), message_id).status == "sent"
    assert sweep_mail(settings, bare, BrokerSender(runtime.broker)) == 0
    bare.kw["bind"].dispose()


def test_the_sweep_forgets_mails_that_ended_and_tokens_that_expired_after_the_keeping_time(
    app, client, runtime, sessions, settings, smtp
):
    from workers.broker import BrokerSender

    client.post("/v1/signup", json={"email": "old@example.com", "password": PASSWORD, "confirm_age_16": True})
    waiting = _queue_one(sessions)
    with transaction(sessions) as session:  # one mail that is still trying
        session.execute(
            update(MailMessage)
            .where(MailMessage.id == waiting)
            .values(next_attempt_at=clock.now() + timedelta(days=60))
        )
    drain(sessions, settings)
    clock.freeze(clock.now())
    clock.advance(timedelta(seconds=settings.mail_log_seconds + 3 * 24 * 3600))
    sweep_mail(settings, sessions, BrokerSender(runtime.broker))
    with transaction(sessions) as session:
        assert list(session.scalars(select(MailMessage.id))) == [waiting]
        assert session.scalar(select(func.count()).select_from(AccountToken)) == 0
