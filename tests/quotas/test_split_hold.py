"""`ledger.split_hold`: part of a workflow run's hold becomes one job's hold, lot by lot,
exactly once, with the ledger check exact — also when two splits race."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from faktry.db import transaction
from quotas import ledger
from quotas.ledger import InsufficientCredits
from quotas.models import Hold, HoldAllocation, LedgerEntry
from tests.quotas.conftest import START, grant


def state(sessions, tenant_id):
    """(available, held, {key: (amount, status, allocations by lot)}, check problems)."""
    with transaction(sessions) as s:
        funds = ledger.balance(s, tenant_id)
        holds = {}
        for h in s.scalars(select(Hold).where(Hold.tenant_id == tenant_id)):
            allocations = {
                a.lot_id: a.amount
                for a in s.scalars(select(HoldAllocation).where(HoldAllocation.hold_id == h.id))
            }
            holds[h.job_id] = (h.amount, h.status, allocations)
        return funds.available, funds.held, holds, ledger.check(s)


def test_a_split_moves_held_credits_lot_by_lot_and_changes_no_lot(sessions, tenant_id):
    early = grant(sessions, tenant_id, 1000, "early", at=START - timedelta(days=200))
    late = grant(sessions, tenant_id, 5000, "late", at=START)
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "run_a", 4000)  # 1000 from the early lot, 3000 from the late
    with transaction(sessions) as s:
        ledger.split_hold(s, tenant_id, "run_a", "job_1", 1500)
    available, held, holds, problems = state(sessions, tenant_id)
    assert (available, held, problems) == (2000, 4000, [])
    # The job's hold took the lot that expires first, like any hold.
    assert holds["job_1"] == (1500, "held", {early.id: 1000, late.id: 500})
    assert holds["run_a"] == (2500, "held", {late.id: 2500})

    # The job is charged part of its hold; the run ends and releases the rest of its own.
    with transaction(sessions) as s:
        ledger.capture(s, tenant_id, "job_1", 1200)
        ledger.release(s, tenant_id, "run_a")
    available, held, _, problems = state(sessions, tenant_id)
    assert (available, held, problems) == (6000 - 1200, 0, [])


def test_a_split_is_done_once_per_job(sessions, tenant_id):
    grant(sessions, tenant_id, 5000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "run_a", 3000)
    with transaction(sessions) as s:
        first = ledger.split_hold(s, tenant_id, "run_a", "job_1", 1000)
    with transaction(sessions) as s:
        again = ledger.split_hold(s, tenant_id, "run_a", "job_1", 1000)
        entries = s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "split"))
    assert again == first
    assert entries == 2  # out of the run's hold, into the job's: one pair for the one lot
    available, held, holds, problems = state(sessions, tenant_id)
    assert (available, held, problems) == (2000, 3000, [])
    assert holds["run_a"][0] == 2000 and holds["job_1"][0] == 1000


def test_what_the_run_hold_lacks_is_held_fresh(sessions, tenant_id):
    lot = grant(sessions, tenant_id, 5000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "run_a", 1000)
    with transaction(sessions) as s:
        ledger.split_hold(s, tenant_id, "run_a", "job_1", 2500)  # 1000 moved, 1500 fresh
    available, held, holds, problems = state(sessions, tenant_id)
    assert (available, held, problems) == (2500, 2500, [])
    assert holds["job_1"] == (2500, "held", {lot.id: 2500})  # one allocation: the two parts merged
    assert holds["run_a"] == (0, "held", {})
    # Nothing left at all: the whole price is held fresh.
    with transaction(sessions) as s:
        ledger.split_hold(s, tenant_id, "run_a", "job_2", 500)
        ledger.release(s, tenant_id, "run_a")
    with transaction(sessions) as s:
        ledger.split_hold(s, tenant_id, "run_a", "job_3", 500)  # the run's hold is resolved
    available, held, holds, problems = state(sessions, tenant_id)
    assert (available, held, problems) == (1500, 3500, [])
    assert holds["job_3"][0] == 500


def test_a_short_account_refuses_the_split_and_changes_nothing(sessions, tenant_id):
    grant(sessions, tenant_id, 3000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "run_a", 2000)
    before = state(sessions, tenant_id)
    with pytest.raises(InsufficientCredits), transaction(sessions) as s:
        ledger.split_hold(s, tenant_id, "run_a", "job_1", 3500)  # 2000 moved + 1500 fresh > 1000
    assert state(sessions, tenant_id) == before
    assert before[3] == []


@pytest.mark.parametrize("round_", range(3))
def test_racing_splits_of_one_run_hold_stay_exact(sessions, tenant_id, round_):
    """Eight jobs of one run split at once; the run's hold covers five of them, the account
    two more: exactly seven get holds, the eighth is refused, and the check is exact (row
    locks on PostgreSQL, the write lock on SQLite)."""
    grant(sessions, tenant_id, 7000, "g")
    with transaction(sessions) as s:
        ledger.hold(s, tenant_id, "run_a", 5000)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def split(n: int) -> None:
        barrier.wait()
        try:
            with transaction(sessions) as s:
                ledger.split_hold(s, tenant_id, "run_a", f"job_{n}", 1000)
            outcomes.append("held")
        except InsufficientCredits:
            outcomes.append("refused")

    threads = [threading.Thread(target=split, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["held"] * 7 + ["refused"]
    available, held, holds, problems = state(sessions, tenant_id)
    assert problems == []
    assert (available, held) == (0, 7000)
    assert holds["run_a"][0] == 0
    assert sorted(amount for key, (amount, _, _) in holds.items() if key != "run_a") == [1000] * 7
