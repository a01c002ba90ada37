"""`pipelines.groupcommit`: writes that arrive together share one transaction, and each keeps
its own outcome. The groups are made deterministic by holding the first write until the
others are waiting, never by timing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.errors import ValidationError
from faktry.tenancy import User, create_tenant
from pipelines.groupcommit import GroupCommit, _Write
from pipelines.mail.models import MailMessage
from quotas import ledger
from quotas.models import MILLI, CreditLot


@pytest.fixture
def sessions(db_url: str) -> Iterator[Any]:
    from faktry import migrate

    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _signup(email: str) -> Callable[[Session], str]:
    def write(session: Session) -> str:
        tenant, _ = create_tenant(session, email=email, bcrypt_rounds=4)
        return tenant.id

    return write


def _emails(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"g{i}-{run}@example.com" for i in range(n)]


def _together(
    group: GroupCommit, writes: list[Callable[[Session], Any]], tenants: list[str] | None = None
) -> list[Any]:
    """Run the first write, held until every other one waits behind it, then the rest:
    the first is a group of its own, the others one group. Each thread's outcome (a result or
    the exception it raised) comes back in order. ``tenants``: each write's tenant."""
    outcomes: list[Any] = [None] * len(writes)
    others_waiting = threading.Event()
    first = writes[0]

    def held(session: Session) -> Any:
        assert others_waiting.wait(30)
        return first(session)

    def call(i: int, write: Callable[[Session], Any]) -> None:
        try:
            outcomes[i] = group.run(tenants[i] if tenants else None, write)
        except Exception as err:
            outcomes[i] = err

    threads = [threading.Thread(target=call, args=(0, held))]
    threads[0].start()
    while not group._leading:
        threading.Event().wait(0.001)
    threads += [threading.Thread(target=call, args=(i, w)) for i, w in enumerate(writes[1:], 1)]
    for t in threads[1:]:
        t.start()
    while len(group._waiting) < len(writes) - 1:
        threading.Event().wait(0.001)
    others_waiting.set()
    for t in threads:
        t.join(30)
    return outcomes


def _users(sessions: Any, emails: list[str]) -> int:
    with transaction(sessions) as s:
        return int(s.scalar(select(func.count()).select_from(User).where(User.email.in_(emails))) or 0)


def test_writes_that_arrive_together_share_one_transaction_and_one_after_commit(sessions):
    seen: list[list[str]] = []
    group = GroupCommit(sessions, after_commit=seen.append)
    emails = _emails(6)
    outcomes = _together(group, [_signup(e) for e in emails])
    assert all(isinstance(o, str) and o.startswith("ten_") for o in outcomes), outcomes
    # The first alone, the five that waited behind it together.
    assert (group.stats.transactions, group.stats.writes, group.stats.retried) == (2, 6, 0)
    assert [len(s) for s in seen] == [1, 5]
    assert sorted(t for s in seen for t in s) == sorted(outcomes)
    assert _users(sessions, emails) == 6


def test_a_write_that_fails_in_a_group_fails_alone(sessions):
    group = GroupCommit(sessions)
    emails = _emails(5)
    taken = emails[0]
    with transaction(sessions) as s:
        create_tenant(s, email=taken, bcrypt_rounds=4)
    writes = [_signup(emails[1]), _signup(emails[2]), _signup(taken), _signup(emails[3]), _signup(emails[4])]
    outcomes = _together(group, writes)
    assert isinstance(outcomes[2], ValidationError) and outcomes[2].code == "email_taken"
    assert all(isinstance(outcomes[i], str) for i in (0, 1, 3, 4)), outcomes
    # The group of four ran once together, was rolled back, and ran again write by write.
    assert group.stats.retried == 1
    assert group.stats.writes == 4
    assert _users(sessions, emails) == 5  # the four new ones and the one that was there


def test_a_write_alone_that_fails_leaves_nothing_and_the_next_one_leads(sessions):
    group = GroupCommit(sessions)
    [email] = _emails(1)

    def half_then_fail(session: Session) -> None:
        create_tenant(session, email=email, bcrypt_rounds=4)
        raise RuntimeError("the write's own bug")

    with pytest.raises(RuntimeError, match="own bug"):
        group.run(None, half_then_fail)
    assert _users(sessions, [email]) == 0
    assert group.run(None, _signup(email)).startswith("ten_")
    assert not group._leading and not group._waiting


def test_a_commit_that_fails_reaches_every_write_of_its_group(sessions):
    group = GroupCommit(sessions)
    failing = {"on": False}

    def refuse(_session: Session) -> None:
        if failing["on"]:
            raise OSError("disk full")

    event.listen(sessions, "before_commit", refuse)
    failing["on"] = True
    emails = _emails(4)
    outcomes = _together(group, [_signup(e) for e in emails])
    assert all(isinstance(o, OSError) for o in outcomes), outcomes
    failing["on"] = False
    assert _users(sessions, emails) == 0
    # The group commit goes on once the database does.
    assert group.run(None, _signup(emails[0])).startswith("ten_")


def test_each_write_of_a_group_sees_only_its_own_tenants_rows(sessions):
    """A write with a tenant is confined to that tenant's rows (and on PostgreSQL, by
    row-level security, even in plain SQL); in a group, each write to its own."""
    tenants = []
    with transaction(sessions) as s:
        for email in _emails(3):
            tenant, _ = create_tenant(s, email=email, bcrypt_rounds=4)
            ledger.add_credits(s, tenant.id, 5 * MILLI, source="grant", key=f"t:{tenant.id}")
            tenants.append(tenant.id)
    group = GroupCommit(sessions)

    def lots(session: Session) -> tuple[set[str], set[str]]:
        orm = set(session.scalars(select(CreditLot.tenant_id)))
        raw = set(session.execute(text("SELECT tenant_id FROM credit_lots")).scalars())
        return orm, raw

    def reads_for(tenant_id: str) -> Callable[[Session], Any]:
        return lambda session: (tenant_id, *lots(session))

    alone = [group.run(t, reads_for(t)) for t in tenants]
    together = _together(group, [reads_for(t) for t in tenants], tenants)
    assert group.stats.transactions == 5  # three alone, then one, then two together
    for tenant_id, orm, raw in alone + together:
        assert orm == {tenant_id}
        if sessions.kw["bind"].dialect.name == "postgresql":
            assert raw == {tenant_id}


def test_a_group_is_at_most_max_group_writes(sessions):
    group = GroupCommit(sessions, max_group=2)
    outcomes = _together(group, [_signup(e) for e in _emails(5)])
    assert all(isinstance(o, str) for o in outcomes)
    # The first alone, then the four that waited, two by two.
    assert group.stats.transactions == 3 and group.stats.writes == 5


def test_max_group_must_be_positive(sessions):
    with pytest.raises(ValueError):
        GroupCommit(sessions, max_group=0)


def test_two_processes_groups_lock_their_tenants_in_one_order(sessions):
    """Two web processes' groups with the same tenants, arrived in opposite orders: each
    group's writes lock their tenant's account. Written in arrival order, each group would
    hold one account and wait for the other's (on PostgreSQL a deadlock, one group aborted
    after a second); written in tenant order, one group waits for the other, and all commit."""
    tenants = []
    with transaction(sessions) as s:
        for email in _emails(2):
            tenant, _ = create_tenant(s, email=email, bcrypt_rounds=4)
            ledger.lock_account(s, tenant.id)
            tenants.append(tenant.id)
    first_locked = [threading.Event(), threading.Event()]

    def lock(tenant_id: str, me: int) -> Callable[[Session], str]:
        def write(session: Session) -> str:
            ledger.lock_account(session, tenant_id)
            if not first_locked[me].is_set():  # this group's first lock: let the other take its own
                first_locked[me].set()
                first_locked[1 - me].wait(0.5)
            return tenant_id

        return write

    groups = [GroupCommit(sessions), GroupCommit(sessions)]
    writes = [
        [_Write(tenants[0], lock(tenants[0], 0)), _Write(tenants[1], lock(tenants[1], 0))],
        [_Write(tenants[1], lock(tenants[1], 1)), _Write(tenants[0], lock(tenants[0], 1))],
    ]
    threads = [threading.Thread(target=g._commit, args=(w,)) for g, w in zip(groups, writes, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [[w.error for w in ws] for ws in writes] == [[None, None], [None, None]]
    assert [(g.stats.transactions, g.stats.retried) for g in groups] == [(1, 0), (1, 0)]


def test_one_writer_at_a_time_may_write_alone_and_never_beside_a_group(sessions):
    group = GroupCommit(sessions)
    assert group.claim_alone()
    assert not group.claim_alone()  # someone writes alone: the next one joins a group
    group.release_alone()
    assert group.claim_alone()
    group.release_alone()
    entered, leave = threading.Event(), threading.Event()

    def slow(_session: Session) -> None:
        entered.set()
        assert leave.wait(30)

    leader = threading.Thread(target=group.run, args=(None, slow))
    leader.start()
    assert entered.wait(30)
    assert not group.claim_alone()  # a group is being written
    leave.set()
    leader.join(30)
    assert group.claim_alone()
    group.release_alone()


def test_a_refused_write_in_a_group_leaves_the_others_mail_to_go_out_at_commit(sessions):
    """Mail (and webhook messages) written in a transaction start going out when it commits.
    In a group written write by write, each in a savepoint, neither the release of a savepoint
    (not yet a commit) nor the rollback of a refused write's savepoint hands over or drops the
    others' mail."""
    from pipelines.mail import outbox

    kicked: list[str] = []
    unseen: list[str] = []

    def kick(ids: list[str]) -> None:
        # What a sender started by the kick would see: the messages, committed.
        with transaction(sessions) as other:
            found = set(other.scalars(select(MailMessage.id).where(MailMessage.id.in_(ids))))
        unseen.extend(i for i in ids if i not in found)
        kicked.extend(ids)

    outbox.install(sessions, kick)
    queued: list[str] = []

    def mail(to: str, refuse: bool = False) -> Callable[[Session], str]:
        def write(session: Session) -> str:
            message_id = outbox.queue(
                session, to=to, kind="security_notice", tenant_id=None,
                context={"email": to, "event": "a test", "detail": "", "link": "http://127.0.0.1/login"},
            )  # fmt: skip
            if refuse:
                raise ValidationError("refused after writing its mail", field="to")
            queued.append(message_id)
            return message_id

        return write

    emails = _emails(4)
    outcomes = _together(
        GroupCommit(sessions),
        [mail(emails[0]), mail(emails[1]), mail(emails[2], refuse=True), mail(emails[3])],
    )
    assert isinstance(outcomes[2], ValidationError)
    sent = [o for o in outcomes if isinstance(o, str)]
    assert len(sent) == 3
    # Every committed mail was handed over once its transaction had committed, not when its
    # savepoint was released (a sender would have found nothing), nor lost with another's.
    assert set(sent) <= set(kicked)
    assert not set(unseen) & set(sent)
    # The refused write's own mail may be kicked too: its sender finds nothing and skips it.
    assert set(unseen) <= {m for m in kicked if m not in sent}
