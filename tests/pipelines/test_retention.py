"""Retention sweeps of the scheduler's pass, tested by moving the clock: the ledger's seven
years (purged entries carried forward, `faktry ledger check` still exact) and a tier's
output retention (job outputs removed after N days, uploads never)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from faktry import clock
from faktry.db import transaction
from pipelines import checks, runner
from pipelines.reconcile import reconcile
from quotas import ledger
from quotas.models import Account, CreditLot, LedgerEntry
from storage.models import File
from tests.web.helpers import upload

START = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
EIGHT_YEARS = timedelta(days=8 * 365)


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, queue, job_id):
        self.sent.append((queue, job_id))


def _pass(ctx, **settings):
    return reconcile(ctx.sessions, Recorder(), ctx.storage, ctx.settings.replace(**settings))


def _entries(ctx, tenant_id):
    with transaction(ctx.sessions) as s:
        return sorted(
            ((e.kind, e.lot_id, e.available, e.held, e.debt, e.created_at, e.idempotency_key)
             for e in s.scalars(select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id))),
            key=lambda entry: entry[-1],
        )  # fmt: skip


def _state(ctx, tenant_ids):
    """What money looks like from outside the ledger: balances, lots and debts."""
    with transaction(ctx.sessions) as s:
        balances = {t: (b.available, b.held, b.debt) for t, b in ledger.balances(s, list(tenant_ids)).items()}
        lots = sorted(
            (lot.id, lot.remaining, lot.held, lot.amount)
            for lot in s.scalars(select(CreditLot).where(CreditLot.tenant_id.in_(tenant_ids)))
        )
        debts = sorted(s.execute(select(Account.tenant_id, Account.debt)).all())
    return balances, lots, debts


def _problems(ctx):
    with transaction(ctx.sessions) as s:
        return ledger.check(s)


def _history(ctx, make_tenant):
    """Two tenants with eight-year-old money: grants, a job charged, a refund that became a
    debt and was paid, a hold still open; and a third whose money is all recent."""
    clock.freeze(START)
    a, b = make_tenant(credits=0), make_tenant(credits=0)
    with transaction(ctx.sessions) as s:
        ledger.add_credits(s, a.id, 10_000, source="grant", key="a-1")
        ledger.hold(s, a.id, "job_a1", 3_000)
    with transaction(ctx.sessions) as s:
        ledger.capture(s, a.id, "job_a1", 2_000)
        refunded = ledger.add_credits(s, a.id, 1_000, source="purchase", key="a-2")
        assert refunded is not None
        ledger.hold(s, a.id, "job_a2", 9_000)  # everything: the refund below becomes a debt
    with transaction(ctx.sessions) as s:
        ledger.capture(s, a.id, "job_a2", 9_000)
        refunded = s.get(CreditLot, refunded.id)
        assert ledger.take_back(s, a.id, refunded, 1_000, key="a-refund", memo="refund") == (0, 1_000)
    clock.advance(timedelta(days=1))
    with transaction(ctx.sessions) as s:
        ledger.add_credits(s, a.id, 2_000, source="grant", key="a-3")  # pays the debt
        ledger.add_credits(s, b.id, 4_000, source="grant", key="b-1")
        ledger.hold(s, b.id, "job_b1", 1_000)
    assert _problems(ctx) == []
    clock.advance(EIGHT_YEARS)
    c = make_tenant(credits=0)
    with transaction(ctx.sessions) as s:
        ledger.add_credits(s, c.id, 5_000, source="grant", key="c-1")
        ledger.hold(s, c.id, "job_c1", 500)
    return a, b, c


def test_ledger_entries_older_than_seven_years_are_carried_forward_and_the_check_stays_exact(
    runtime, make_tenant
):
    ctx = runtime.context
    a, b, c = _history(ctx, make_tenant)
    ids = [a.id, b.id, c.id]
    # The pass of today with a retention that purges nothing: lots expire, stale holds end.
    _pass(ctx, ledger_retention_days=100 * 365)
    before = _state(ctx, ids)
    recent_c = _entries(ctx, c.id)
    assert _problems(ctx) == []

    report = _pass(ctx)  # seven years, the default

    assert report.ledger_entries_deleted > 0 and report.ledger_entries_carried > 0
    assert _problems(ctx) == []
    assert _state(ctx, ids) == before
    cutoff = clock.now() - timedelta(days=7 * 365)
    for tenant in (a, b):
        old = [e for e in _entries(ctx, tenant.id) if e[5] < cutoff]
        assert old and all(kind == "carried" for kind, *_ in old)
        # One carried entry per lot (and one for lot-less debt entries) at most.
        assert len({lot for _, lot, *_ in old}) == len(old)
    carried_a = {lot: (available, held, debt) for kind, lot, available, held, debt, *_ in _entries(ctx, a.id)
                 if kind == "carried"}  # fmt: skip
    # The debt owed after the refund and the lot that paid it carry what makes the debt exact.
    assert carried_a[None] == (0, 0, 1_000)
    assert sum(debt for _, _, debt in carried_a.values()) == 0
    assert _entries(ctx, c.id) == recent_c  # a tenant with recent money only: untouched

    settled = _entries(ctx, a.id), _entries(ctx, b.id)
    again = _pass(ctx)
    assert (again.ledger_entries_deleted, again.ledger_entries_carried) == (0, 0)
    assert (_entries(ctx, a.id), _entries(ctx, b.id)) == settled

    # Eight more years: the entries of that pass (and the third tenant's) are old too, and
    # are folded into the carried ones; only what this pass itself did is left beside them.
    clock.advance(EIGHT_YEARS)
    _pass(ctx)
    assert _problems(ctx) == []
    cutoff = clock.now() - timedelta(days=7 * 365)
    for tenant in (a, b, c):
        assert {kind for kind, *_, at, _ in _entries(ctx, tenant.id) if at < cutoff} <= {"carried"}
    with transaction(ctx.sessions) as s:
        assert ledger.balance(s, a.id).debt == 0


def test_a_purge_in_small_batches_converges_to_one_carried_entry_per_lot(runtime, make_tenant):
    ctx = runtime.context
    a, b, _ = _history(ctx, make_tenant)
    for _ in range(30):
        with transaction(ctx.sessions) as s:
            done = ledger.carry_forward(s, clock.now() - timedelta(days=7 * 365), groups=1, rows=2)
        assert _problems(ctx) == []
        if done == ledger.Carried():
            break
    else:
        pytest.fail("the purge did not finish")
    for tenant in (a, b):
        old = [e for e in _entries(ctx, tenant.id) if e[5] < clock.now() - timedelta(days=7 * 365)]
        assert len({lot for _, lot, *_ in old}) == len(old)
        assert all(kind == "carried" for kind, *_ in old)


def test_ledger_retention_must_be_positive(runtime):
    ctx = runtime.context
    with pytest.raises(ValueError, match="retention"):
        _pass(ctx, ledger_retention_days=0)


def _output(client, tenant, png_image, ctx):
    file_id = upload(client, tenant, png_image).json["id"]
    r = client.post(
        "/v1/jobs",
        json={"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 32, "height": 32}},
        headers=tenant.headers,
    )
    assert r.status_code == 202, r.json
    runner.run(ctx, r.json["id"])
    job = client.get(f"/v1/jobs/{r.json['id']}", headers=tenant.headers).json
    assert job["status"] == "succeeded", job
    [output] = job["outputs"]
    return file_id, output


def _used(ctx, tenant_id):
    with transaction(ctx.sessions) as s:
        return s.scalar(select(Account.storage_used_bytes).where(Account.tenant_id == tenant_id))


def test_outputs_of_a_tier_with_retention_are_removed_after_n_days_and_uploads_are_kept(
    client, runtime, make_tenant, make_tier, png_image
):
    ctx = runtime.context
    short = make_tenant(tier=make_tier(output_retention_days=30))
    keeps = make_tenant()  # free: outputs kept
    upload_s, output_s = _output(client, short, png_image, ctx)
    upload_k, output_k = _output(client, keeps, png_image, ctx)
    made = datetime.fromisoformat(output_s["created_at"])

    # Shown beforehand: the job's output and the file say when; uploads and other tiers do not.
    expires = made + timedelta(days=30)
    assert datetime.fromisoformat(output_s["expires_at"]) == expires
    assert client.get(f"/v1/files/{output_s['id']}", headers=short.headers).json["expires_at"] == (
        expires.isoformat()
    )
    listed = {f["id"]: f for f in client.get("/v1/files", headers=short.headers).json["data"]}
    assert "expires_at" in listed[output_s["id"]] and "expires_at" not in listed[upload_s]
    assert "expires_at" not in output_k
    assert "expires_at" not in client.get(f"/v1/files/{output_k['id']}", headers=keeps.headers).json

    used_before = _used(ctx, short.id)
    clock.advance(timedelta(days=29))
    assert _pass(ctx).outputs_removed == 0
    assert client.get(f"/v1/files/{output_s['id']}", headers=short.headers).status_code == 200

    clock.advance(timedelta(days=1, seconds=1))
    assert _pass(ctx).outputs_removed == 1
    assert client.get(f"/v1/files/{output_s['id']}", headers=short.headers).status_code == 404
    assert client.get(f"/v1/files/{upload_s}", headers=short.headers).status_code == 200
    assert _used(ctx, short.id) == used_before - output_s["size"]
    with transaction(ctx.sessions) as s:
        assert checks.storage_usage(s, ctx.storage) == []
        assert s.scalars(select(File.id).where(File.tenant_id == short.id)).all() == [upload_s]
    job = client.get(f"/v1/jobs/{output_s['job_id']}", headers=short.headers).json
    assert job["status"] == "succeeded" and job["outputs"] == []

    # Years on: the other tier's output and every upload are still there.
    clock.advance(timedelta(days=3 * 365))
    assert _pass(ctx).outputs_removed == 0
    for tenant, file_id in ((keeps, output_k["id"]), (keeps, upload_k), (short, upload_s)):
        assert client.get(f"/v1/files/{file_id}", headers=tenant.headers).status_code == 200
    with transaction(ctx.sessions) as s:
        assert checks.storage_usage(s, ctx.storage) == []
