"""The quota service on its own: lots, holds, captures, releases, expiry, debt and the check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from faktry import clock
from faktry.db import transaction
from quotas import ledger
from quotas.ledger import AccountInDebt, InsufficientCredits, one_year_after
from quotas.models import CreditLot, Hold, LedgerEntry
from tests.quotas.conftest import START, grant


def funds(sessions, tenant_id):
    with transaction(sessions) as s:
        return ledger.balance(s, tenant_id)


def assert_clean(sessions):
    with transaction(sessions) as s:
        assert ledger.check(s) == []


def test_a_grant_is_a_lot_that_expires_a_year_later(sessions, tenant_id):
    lot = grant(sessions, tenant_id, 5000, "g1")
    assert lot.expires_at == START.replace(year=2028)
    assert funds(sessions, tenant_id).available == 5000
    assert_clean(sessions)


def test_replaying_a_grant_changes_nothing(sessions, tenant_id):
    assert grant(sessions, tenant_id, 5000, "same") is not None
    assert grant(sessions, tenant_id, 5000, "same") is None
    assert funds(sessions, tenant_id).available == 5000


def test_amounts_are_whole_positive_millicredits(sessions, tenant_id):
    from faktry.errors import ValidationError

    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValidationError), transaction(sessions) as s:
            ledger.add_credits(s, tenant_id, bad, source="grant", key=f"bad-{bad}")


def test_one_year_after_a_leap_day_is_the_28th_of_february():
    assert one_year_after(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2029, 2, 28, tzinfo=UTC)


def test_a_hold_takes_from_the_lot_that_expires_first(sessions, tenant_id):
    late = grant(sessions, tenant_id, 1000, "late", at=START)
    early = grant(sessions, tenant_id, 1000, "early", at=START - timedelta(days=200))
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_a", 1500)
    with transaction(sessions) as s:
        lots = {lot.id: lot for lot in s.scalars(select(CreditLot))}
    assert (lots[early.id].remaining, lots[early.id].held) == (0, 1000)
    assert (lots[late.id].remaining, lots[late.id].held) == (500, 500)
    f = funds(sessions, tenant_id)
    assert (f.available, f.held) == (500, 1500)
    assert_clean(sessions)


def test_a_short_balance_refuses_the_hold_and_holds_nothing(sessions, tenant_id):
    grant(sessions, tenant_id, 1000, "g")
    with pytest.raises(InsufficientCredits) as refused, transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_big", 1001)
    assert refused.value.status == 402 and refused.value.details == {"price": 1001, "available": 1000}
    f = funds(sessions, tenant_id)
    assert (f.available, f.held) == (1000, 0)
    with transaction(sessions) as s:
        assert s.scalars(select(Hold)).all() == []
    assert_clean(sessions)


def test_capture_charges_the_actual_cost_never_more_than_held_and_releases_the_rest(sessions, tenant_id):
    grant(sessions, tenant_id, 1000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_1", 600)
    with transaction(sessions) as s:
        done = ledger.capture(s, tenant_id, "job_1", 450)
    assert done.status == "captured" and done.captured == 450
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_2", 300)
        assert ledger.capture(s, tenant_id, "job_2", 10_000).captured == 300
    f = funds(sessions, tenant_id)
    assert (f.available, f.held) == (250, 0)
    assert_clean(sessions)


def test_a_hold_is_resolved_exactly_once(sessions, tenant_id):
    grant(sessions, tenant_id, 1000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_1", 600)
    with transaction(sessions) as s:
        assert ledger.release(s, tenant_id, "job_1") is not None
    with transaction(sessions) as s:
        assert ledger.release(s, tenant_id, "job_1") is None
        assert ledger.capture(s, tenant_id, "job_1", 600) is None
    assert funds(sessions, tenant_id).available == 1000
    assert_clean(sessions)


def test_credits_held_when_their_lot_expires_stay_reserved_and_the_released_rest_expires(sessions, tenant_id):
    grant(sessions, tenant_id, 1000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_long", 800)
    clock.advance(timedelta(days=366))
    with transaction(sessions) as s:
        assert ledger.expire_lots(s) == 1
    f = funds(sessions, tenant_id)
    assert (f.available, f.held) == (0, 800)  # the 200 not held expired; the 800 stay for the job
    with transaction(sessions) as s:
        assert ledger.capture(s, tenant_id, "job_long", 300).captured == 300
    f = funds(sessions, tenant_id)
    assert (f.available, f.held) == (0, 0)  # the released 500 expired at once
    with transaction(sessions) as s:
        entries = sorted((e.kind, e.available, e.held) for e in s.scalars(select(LedgerEntry)))
    assert entries == sorted(
        [
            ("grant", 1000, 0),
            ("hold", -800, 800),
            ("expiry", -200, 0),  # the sweep: what was not held
            ("capture", 0, -300),
            ("release", 500, -500),
            ("expiry", -500, 0),  # released after the lot expired
        ]
    )
    assert_clean(sessions)


def test_lots_expire_at_exactly_one_year_and_the_sweep_is_idempotent(sessions, tenant_id):
    grant(sessions, tenant_id, 1000, "g")
    clock.advance(timedelta(days=365) - timedelta(seconds=1))  # 2027-03-01 + 365 days = 2028-02-29
    clock.freeze(START.replace(year=2028) - timedelta(microseconds=1))
    with transaction(sessions) as s:
        assert ledger.expire_lots(s) == 0
    assert funds(sessions, tenant_id).available == 1000
    clock.freeze(START.replace(year=2028))
    assert funds(sessions, tenant_id).available == 0  # not spendable from the instant it expires
    with pytest.raises(InsufficientCredits), transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_late", 1)
    with transaction(sessions) as s:
        assert ledger.expire_lots(s) == 1
    with transaction(sessions) as s:
        assert ledger.expire_lots(s) == 0
        expiries = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "expiry")).all()
    assert [e.available for e in expiries] == [-1000]
    assert_clean(sessions)


def test_a_debt_blocks_holds_until_new_credits_pay_it(sessions, tenant_id):
    lot = grant(sessions, tenant_id, 1000, "bought")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_1", 700)
        ledger.capture(s, tenant_id, "job_1", 700)
    with transaction(sessions) as s:
        taken, owed = ledger.take_back(
            s, tenant_id, s.get(CreditLot, lot.id), 1000, key="refund:1", memo="refund"
        )
    assert (taken, owed) == (300, 700)
    assert funds(sessions, tenant_id).debt == 700
    with pytest.raises(AccountInDebt), transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_2", 1)
    grant(sessions, tenant_id, 1000, "more")
    f = funds(sessions, tenant_id)
    assert (f.available, f.debt) == (300, 0)
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_3", 300)
    assert_clean(sessions)


def test_the_database_refuses_a_lot_pushed_past_its_amount(sessions, tenant_id):
    from sqlalchemy.exc import IntegrityError

    lot = grant(sessions, tenant_id, 1000, "g")
    with pytest.raises(IntegrityError), transaction(sessions) as s:
        s.execute(update(CreditLot).where(CreditLot.id == lot.id).values(remaining=CreditLot.remaining + 1))


def test_the_check_catches_a_corrupted_lot_hold_and_debt(sessions, tenant_id):
    lot = grant(sessions, tenant_id, 1000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "job_1", 400)
    assert_clean(sessions)
    with transaction(sessions) as s:
        s.execute(update(CreditLot).where(CreditLot.id == lot.id).values(remaining=CreditLot.remaining - 1))
    with transaction(sessions) as s:
        assert any("remaining" in p.what for p in ledger.check(s))
        s.execute(update(CreditLot).where(CreditLot.id == lot.id).values(remaining=CreditLot.remaining + 1))
    with transaction(sessions) as s:
        assert ledger.check(s) == []
        s.execute(update(Hold).where(Hold.job_id == "job_1").values(amount=Hold.amount + 50))
    with transaction(sessions) as s:
        assert any("hold" in p.what for p in ledger.check(s))
        s.execute(update(Hold).where(Hold.job_id == "job_1").values(amount=Hold.amount - 50))
    from quotas.models import Account

    with transaction(sessions) as s:
        s.execute(update(Account).where(Account.tenant_id == tenant_id).values(debt=5))
    with transaction(sessions) as s:
        assert any("debt" in p.what for p in ledger.check(s))
