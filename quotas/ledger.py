"""The quota service: credits held and debited atomically, exactly once.

Every operation takes a session, locks the tenant's `Account` row first (PostgreSQL:
``SELECT … FOR UPDATE``; SQLite serializes writers with ``BEGIN IMMEDIATE``), then moves
credits with conditional updates and appends ledger entries whose idempotency keys make a
replay a no-op. Services flush, never commit: the caller's transaction makes a hold and the
job it pays for appear together, or not at all.

Spending takes from the lot that expires first. A hold is backed by specific lots: what it
holds stays reserved for its job even if the lot expires meanwhile, and whatever is released
after the lot's expiry expires at once. Credits that become available while the tenant owes
a debt (a refund of credits already spent) pay the debt first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faktry import clock
from faktry.db import memo, new_id
from faktry.errors import FaktryError, NotFound, ValidationError
from faktry.tenancy import Tenant
from quotas.models import MILLI, WEBHOOKS, Account, CreditLot, Hold, HoldAllocation, LedgerEntry


class InsufficientCredits(FaktryError):
    code = "insufficient_credits"
    status = 402


class AccountInDebt(FaktryError):
    code = "account_in_debt"
    status = 402


def one_year_after(at: datetime) -> datetime:
    """The same moment a calendar year later (29 February becomes 28 February)."""
    try:
        return at.replace(year=at.year + 1)
    except ValueError:
        return at.replace(year=at.year + 1, day=28)


def lock_account(session: Session, tenant_id: str) -> Account:
    """The tenant's account row, locked for this transaction (created on first use)."""
    stmt = (
        select(Account)
        .where(Account.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    account = session.scalars(stmt).first()
    if account is not None:
        return account
    try:
        with session.begin_nested():
            session.add(Account(tenant_id=tenant_id))
    except IntegrityError:
        pass  # created concurrently; the select below waits for it
    account = session.scalars(stmt).first()
    assert account is not None
    return account


def _applied(session: Session, key: str) -> bool:
    return session.scalar(select(LedgerEntry.id).where(LedgerEntry.idempotency_key == key)) is not None


def _entry(
    session: Session,
    tenant_id: str,
    kind: str,
    key: str,
    *,
    available: int = 0,
    held: int = 0,
    debt: int = 0,
    lot_id: str | None = None,
    job_id: str | None = None,
    memo: str = "",
) -> None:
    # Core, one statement built once: entries are written and never read back here.
    session.connection().execute(
        _ENTRY,
        {
            "tenant_id": tenant_id,
            "kind": kind,
            "idempotency_key": key,
            "available": available,
            "held": held,
            "debt": debt,
            "lot_id": lot_id,
            "job_id": job_id,
            "memo": memo[:300],
        },
    )


_ENTRY = insert(LedgerEntry)
_MOVE = (
    update(CreditLot)
    .where(
        CreditLot.id == bindparam("lot"),
        CreditLot.remaining + bindparam("d_remaining") >= 0,
        CreditLot.held + bindparam("d_held") >= 0,
    )
    .values(
        remaining=CreditLot.remaining + bindparam("d_remaining"), held=CreditLot.held + bindparam("d_held")
    )
)


def _move(session: Session, lot_id: str, *, remaining: int = 0, held: int = 0) -> None:
    """Change a lot's numbers; the guard makes a wrong delta fail loudly, never go negative."""
    result = session.connection().execute(_MOVE, {"lot": lot_id, "d_remaining": remaining, "d_held": held})
    if result.rowcount != 1:
        raise RuntimeError(f"credit lot {lot_id} cannot move by remaining={remaining}, held={held}")


def _pay_debt(session: Session, account: Account, lot_id: str, available: int, key: str) -> int:
    """Use up to ``available`` of the lot to pay the account's debt; returns what was used."""
    pay = min(account.debt, available)
    if pay <= 0:
        return 0
    _move(session, lot_id, remaining=-pay)
    account.debt -= pay
    _entry(
        session, account.tenant_id, "debt", key, available=-pay, debt=-pay, lot_id=lot_id, memo="debt paid"
    )
    return pay


def add_credits(
    session: Session,
    tenant_id: str,
    amount: int,
    *,
    source: str,
    key: str,
    reference: str | None = None,
    memo: str = "",
    bought_at: datetime | None = None,
) -> CreditLot | None:
    """A new lot of ``amount`` millicredits (purchase, grant, refund, starter), expiring a year
    after ``bought_at``. Returns None when ``key`` was applied before."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValidationError("credits must be a positive whole number of millicredits", field="amount")
    if _applied(session, key):
        return None
    account = lock_account(session, tenant_id)
    if _applied(session, key):  # a concurrent delivery got the lock first
        return None
    bought = bought_at or clock.now()
    lot = CreditLot(
        tenant_id=tenant_id,
        source=source,
        amount=amount,
        remaining=amount,
        reference=reference,
        created_at=bought,
        expires_at=one_year_after(bought),
    )
    session.add(lot)
    session.flush()
    _entry(session, tenant_id, source, key, available=amount, lot_id=lot.id, memo=memo)
    session.flush()
    _pay_debt(session, account, lot.id, amount, f"{key}:debt")
    account.updated_at = clock.now()
    session.flush()
    return lot


#: The most one grant gives, in credits: a ceiling for typos, not a business rule.
MAX_GRANT_CREDITS = 1_000_000
#: A grant's reason is its lot's ``reference`` (200 characters).
MAX_GRANT_REASON = 200
#: The ledger key is ``grant:<key>`` (and ``grant:<key>:debt``) in 200 characters.
MAX_GRANT_KEY = 150


def grant(
    session: Session, tenant_id: str, credits: object, reason: object, *, key: str | None = None
) -> CreditLot | None:
    """An operator's grant of ``credits`` (1 credit = 1,000 millicredits; rounded to the
    millicredit) as a new lot whose reference and memo are ``reason``. The same ``key`` grants
    once: a repeat returns None and changes nothing. Without a key every call grants.

    Raises `ValidationError` for credits that are not a number above 0 and at most
    `MAX_GRANT_CREDITS`, a reason that is not 1 to `MAX_GRANT_REASON` characters, or a key
    already used for another tenant or amount (``idempotency_key_reused``); `NotFound`
    (``tenant_not_found``) for a tenant that does not exist or was deleted. The session must
    not be scoped to another tenant. ``credits`` and ``reason`` may be any (JSON) value: they
    are checked here."""
    if isinstance(credits, bool) or not isinstance(credits, int | float):
        raise ValidationError("credits must be a number", field="credits")
    # NaN fails this comparison too; infinity is out of range.
    if not 0 < credits <= MAX_GRANT_CREDITS:
        raise ValidationError(f"credits must be above 0 and at most {MAX_GRANT_CREDITS}", field="credits")
    millicredits = round(credits * MILLI)
    if millicredits <= 0:
        raise ValidationError("credits must be at least 0.001", field="credits")
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= MAX_GRANT_REASON or "\x00" in reason:
        raise ValidationError(f"reason must be 1 to {MAX_GRANT_REASON} characters", field="reason")
    if key is not None and (not 1 <= len(key) <= MAX_GRANT_KEY or "\x00" in key):
        raise ValidationError(f"the key must be 1 to {MAX_GRANT_KEY} characters", field="idempotency_key")
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant.status == "deleted":
        raise NotFound("no such tenant", code="tenant_not_found")
    reason = reason.strip()
    ledger_key = f"grant:{key or uuid.uuid4().hex}"
    lot = add_credits(
        session, tenant_id, millicredits, source="grant", key=ledger_key, reference=reason, memo=reason
    )
    if lot is not None:
        # Paying a debt moved the lot by a bulk update: reload it, so the caller (and
        # `balance` in this session) sees what remains.
        session.refresh(lot)
        return lot
    first = session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key == ledger_key)).first()
    if first is None or (first.tenant_id, first.available) != (tenant_id, millicredits):
        raise ValidationError(
            "this key was used for a grant to another tenant or of another amount",
            field="idempotency_key",
            code="idempotency_key_reused",
        )
    return None


@dataclass(frozen=True)
class Balance:
    available: int
    held: int
    debt: int
    lots: list[CreditLot]


def balance(session: Session, tenant_id: str) -> Balance:
    return balances(session, [tenant_id])[tenant_id]


def balances(session: Session, tenant_ids: Sequence[str]) -> dict[str, Balance]:
    """The balance of each tenant, in two queries whatever their number: credits in lots
    that have not expired are available; held credits count until their job ends."""
    now = clock.now()
    live: dict[str, list[CreditLot]] = {tenant_id: [] for tenant_id in tenant_ids}
    for lot in session.scalars(
        select(CreditLot)
        .where(CreditLot.tenant_id.in_(live), (CreditLot.remaining > 0) | (CreditLot.held > 0))
        .order_by(CreditLot.expires_at, CreditLot.id)
    ):
        live[lot.tenant_id].append(lot)
    debts: dict[str, int] = {
        tenant_id: debt
        for tenant_id, debt in session.execute(
            select(Account.tenant_id, Account.debt).where(Account.tenant_id.in_(live))
        )
    }
    return {
        tenant_id: Balance(
            available=sum(lot.remaining for lot in lots if lot.expires_at > now),
            held=sum(lot.held for lot in lots),
            debt=debts.get(tenant_id, 0),
            lots=lots,
        )
        for tenant_id, lots in live.items()
    }


def hold(session: Session, tenant_id: str, job_id: str, amount: int) -> str:
    """Reserve ``amount`` for a job from the lots that expire first, or raise
    `InsufficientCredits` / `AccountInDebt` having changed nothing. Returns the hold's id."""
    [hold_id] = hold_many(session, tenant_id, [(job_id, amount)])
    return hold_id


def hold_many(session: Session, tenant_id: str, wanted: Sequence[tuple[str, int]]) -> list[str]:
    """Reserve each ``(job id, amount)`` from the lots that expire first, every job with a
    hold of its own, in a fixed number of statements however many jobs: all of them, or
    (`InsufficientCredits` for the total, `AccountInDebt`) none. Returns the holds' ids."""
    conn = session.connection()
    row = conn.execute(_LOCK_DEBT, {"tenant": tenant_id}).first()
    # The account's first use creates it.
    debt, webhooks = (
        (row.debt, row.webhooks) if row is not None else (0, lock_account(session, tenant_id).webhooks)
    )
    # What the locked row says of webhooks spares the job's events a lookup (`webhooks.outbox`).
    memo(session)[(WEBHOOKS, tenant_id)] = webhooks
    if debt > 0:
        raise AccountInDebt(
            "refunded credits were already spent; buy credits to settle the balance first",
            details={"debt": debt},
        )
    now = clock.now()
    lots = conn.execute(_SPENDABLE_LOTS, {"tenant": tenant_id, "now": now}).all()
    available = sum(lot.remaining for lot in lots)
    total = sum(amount for _, amount in wanted)
    if available < total:
        raise InsufficientCredits(
            f"this costs {total} millicredits and {available} are available",
            details={"price": total, "available": available},
        )
    records = [
        {
            "id": new_id("hld"), "tenant_id": tenant_id, "job_id": job_id, "amount": amount,
            "captured": 0, "status": "held", "created_at": now, "resolved_at": None,
        }
        for job_id, amount in wanted
    ]  # fmt: skip
    conn.execute(_INSERT_HOLD, records)
    left = {lot.id: lot.remaining for lot in lots}
    taken: dict[str, int] = {}
    allocations: list[dict[str, object]] = []
    entries: list[dict[str, object]] = []
    order = [lot.id for lot in lots]
    cursor = 0
    for record, (_, need) in zip(records, wanted, strict=True):
        while need > 0:
            lot_id = order[cursor]
            take = min(left[lot_id], need)
            if take == 0:
                cursor += 1
                continue
            left[lot_id] -= take
            taken[lot_id] = taken.get(lot_id, 0) + take
            need -= take
            allocations.append({"hold_id": record["id"], "lot_id": lot_id, "amount": take})
            entries.append(
                {
                    "id": new_id("txn"), "tenant_id": tenant_id, "kind": "hold",
                    "idempotency_key": f"hold:{record['job_id']}:{lot_id}", "available": -take, "held": take,
                    "debt": 0, "lot_id": lot_id, "job_id": record["job_id"], "memo": "", "created_at": now,
                }
            )  # fmt: skip
    for lot_id, take in taken.items():
        _move(session, lot_id, remaining=-take, held=take)
    if allocations:
        conn.execute(_INSERT_ALLOCATION, allocations)
        conn.execute(_ENTRY, entries)
    return [str(record["id"]) for record in records]


#: The statements of a hold, built once (see `pipelines.lifecycle.transition`).
_LOCK_DEBT = (
    select(Account.debt, Account.webhooks).where(Account.tenant_id == bindparam("tenant")).with_for_update()
)
_SPENDABLE_LOTS = (
    select(CreditLot.id, CreditLot.remaining)
    .where(
        CreditLot.tenant_id == bindparam("tenant"),
        CreditLot.remaining > 0,
        CreditLot.expires_at > bindparam("now"),
    )
    .order_by(CreditLot.expires_at, CreditLot.id)
)
_INSERT_HOLD = insert(Hold)
_INSERT_ALLOCATION = insert(HoldAllocation)


def split_hold(session: Session, tenant_id: str, from_key: str, to_key: str, amount: int) -> str:
    """Move ``amount`` of the open hold keyed ``from_key`` (a workflow run's) into a new hold
    keyed ``to_key`` (one of its jobs), lot by lot, earliest expiry first. Returns the new
    hold's id.

    The credits stay held throughout, so no lot's numbers change: each lot moved writes a
    pair of ``split`` entries (held out of one key, into the other) whose idempotency keys
    name the new hold, and the check stays exact. When the old hold has less left than
    ``amount`` (a fan-out wider than quoted), the difference is held fresh from the account
    first, raising `InsufficientCredits` / `AccountInDebt` having changed nothing. A second
    call for the same ``to_key`` changes nothing and returns the hold it made.

    Locks in the order every money operation takes them: the old hold's row, then the
    account (only for a fresh part), then lots."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValueError(f"split_hold: {amount!r} is not a whole number of millicredits")
    conn = session.connection()
    source = conn.execute(_LOCK_OPEN_HOLD, {"job": from_key}).first()
    made = conn.execute(_HOLD_OF, {"job": to_key}).scalar()
    if made is not None:
        return str(made)
    left = source.amount if source is not None and source.tenant_id == tenant_id else 0
    moved = min(left, amount)
    fresh = amount - moved
    if fresh or not moved:
        # Held first: if the account is short, nothing has moved yet.
        [hold_id] = hold_many(session, tenant_id, [(to_key, fresh)])
        taken = {
            lot_id: allocated for lot_id, allocated in conn.execute(_ALLOCATIONS_OF, {"hold": hold_id}).all()
        }
    else:
        hold_id = new_id("hld")
        conn.execute(
            _INSERT_HOLD,
            {
                "id": hold_id, "tenant_id": tenant_id, "job_id": to_key, "amount": 0, "captured": 0,
                "status": "held", "created_at": clock.now(), "resolved_at": None,
            },
        )  # fmt: skip
        taken = {}
    if not moved:
        return hold_id
    assert source is not None
    need = moved
    for allocated, lot_id, _ in conn.execute(_ALLOCATIONS, {"hold": source.id}).all():
        if need == 0:
            break
        take = min(allocated, need)
        need -= take
        if take == allocated:
            conn.execute(_DROP_ALLOCATION, {"hold": source.id, "lot": lot_id})
        else:
            conn.execute(_SHRINK_ALLOCATION, {"hold": source.id, "lot": lot_id, "by": take})
        if lot_id in taken:
            conn.execute(_SHRINK_ALLOCATION, {"hold": hold_id, "lot": lot_id, "by": -take})
        else:
            conn.execute(_INSERT_ALLOCATION, {"hold_id": hold_id, "lot_id": lot_id, "amount": take})
        _entry(
            session, tenant_id, "split", f"split-out:{to_key}:{lot_id}", held=-take, lot_id=lot_id,
            job_id=from_key, memo=f"held for {to_key}",
        )  # fmt: skip
        _entry(
            session, tenant_id, "split", f"split-in:{to_key}:{lot_id}", held=take, lot_id=lot_id,
            job_id=to_key, memo=f"from the hold of {from_key}",
        )  # fmt: skip
    if need:
        raise RuntimeError(f"hold {source.id}: its allocations do not back its amount")
    conn.execute(_GROW_HOLD, {"hold": source.id, "by": -moved})
    conn.execute(_GROW_HOLD, {"hold": hold_id, "by": moved})
    return hold_id


#: The statements of a split, built once.
_LOCK_OPEN_HOLD = (
    select(Hold.id, Hold.tenant_id, Hold.amount)
    .where(Hold.job_id == bindparam("job"), Hold.status == "held")
    .with_for_update()
)
_HOLD_OF = select(Hold.id).where(Hold.job_id == bindparam("job"))
_ALLOCATIONS_OF = select(HoldAllocation.lot_id, HoldAllocation.amount).where(
    HoldAllocation.hold_id == bindparam("hold")
)
_DROP_ALLOCATION = delete(HoldAllocation).where(
    HoldAllocation.hold_id == bindparam("hold"), HoldAllocation.lot_id == bindparam("lot")
)
_SHRINK_ALLOCATION = (
    update(HoldAllocation)
    .where(HoldAllocation.hold_id == bindparam("hold"), HoldAllocation.lot_id == bindparam("lot"))
    .values(amount=HoldAllocation.amount - bindparam("by"))
)
_GROW_HOLD = update(Hold).where(Hold.id == bindparam("hold")).values(amount=Hold.amount + bindparam("by"))


@dataclass(frozen=True)
class Resolved:
    """A hold as it was resolved: what was held, what was charged, and how it ended."""

    id: str
    job_id: str
    amount: int
    captured: int
    status: str


def capture(session: Session, tenant_id: str, job_id: str, actual: int) -> Resolved | None:
    """Charge the job ``actual`` (never more than held) and release the rest. Resolves the
    hold exactly once: returns None if it was resolved already (or never existed)."""
    return _resolve(session, tenant_id, job_id, max(0, actual), "captured")


def release(session: Session, tenant_id: str, job_id: str) -> Resolved | None:
    """Give the whole hold back (failure, cancel, expiry). Exactly once, like `capture`."""
    return _resolve(session, tenant_id, job_id, 0, "released")


#: Resolving a hold, built once (see `pipelines.lifecycle.transition`): only the caller that
#: finds it still held wins; it captures at most what was held.
_CHARGE = bindparam("charge", type_=Hold.amount.type)
_RESOLVE_HOLD = (
    update(Hold)
    .where(Hold.job_id == bindparam("job"), Hold.status == "held")
    .values(
        status=bindparam("to"),
        captured=case((Hold.amount < _CHARGE, Hold.amount), else_=_CHARGE),
        resolved_at=bindparam("at"),
    )
    .returning(Hold.id, Hold.amount, Hold.captured)
)
_ALLOCATIONS = (
    select(HoldAllocation.amount, CreditLot.id, CreditLot.expires_at)
    .join(CreditLot, CreditLot.id == HoldAllocation.lot_id)
    .where(HoldAllocation.hold_id == bindparam("hold"))
    .order_by(CreditLot.expires_at, CreditLot.id)
)


def _resolve(session: Session, tenant_id: str, job_id: str, charge: int, status: str) -> Resolved | None:
    """Resolve the hold with one conditional update (only one caller ever wins it), then
    move its credits lot by lot. Locks are taken in the order every money operation uses
    (hold, account, lots by expiry), and the account only when credits come back, where
    a debt may take them."""
    now = clock.now()
    won = (
        session.connection()
        .execute(_RESOLVE_HOLD, {"job": job_id, "to": status, "charge": charge, "at": now})
        .first()
    )
    if won is None:
        return None
    account = lock_account(session, tenant_id) if won.captured < won.amount else None
    left = won.captured
    rows = session.connection().execute(_ALLOCATIONS, {"hold": won.id}).all()
    for allocated, lot_id, expires_at in rows:
        take = min(allocated, left)
        rest = allocated - take
        left -= take
        if take:
            _move(session, lot_id, held=-take)
            _entry(
                session,
                tenant_id,
                "capture",
                f"capture:{job_id}:{lot_id}",
                held=-take,
                lot_id=lot_id,
                job_id=job_id,
            )
        if rest:
            _move(session, lot_id, held=-rest, remaining=rest)
            _entry(
                session, tenant_id, "release", f"release:{job_id}:{lot_id}", available=rest, held=-rest,
                lot_id=lot_id, job_id=job_id,
            )  # fmt: skip
            if expires_at <= now:
                _move(session, lot_id, remaining=-rest)
                _entry(
                    session, tenant_id, "expiry", f"release-expiry:{job_id}:{lot_id}", available=-rest,
                    lot_id=lot_id, job_id=job_id, memo="released after the lot expired",
                )  # fmt: skip
            elif account is not None:
                _pay_debt(session, account, lot_id, rest, f"release-debt:{job_id}:{lot_id}")
    return Resolved(won.id, job_id, won.amount, won.captured, status)


def expire_lots(session: Session, *, limit: int = 500) -> int:
    """Expire what remains of lots past their expiry; run again, it changes nothing."""
    now = clock.now()
    due = session.execute(
        select(CreditLot.id, CreditLot.tenant_id)
        .where(CreditLot.expires_at <= now, CreditLot.remaining > 0)
        .order_by(CreditLot.expires_at)
        .limit(limit)
    ).all()
    done = 0
    for lot_id, tenant_id in due:
        lock_account(session, tenant_id)
        lot = session.scalars(
            select(CreditLot).where(CreditLot.id == lot_id).execution_options(populate_existing=True)
        ).one()
        if lot.remaining <= 0:
            continue
        amount = lot.remaining
        # Released credits of an expired lot expire as they are released, so a lot's
        # remaining expires here at most once.
        key = f"expiry:{lot.id}"
        if _applied(session, key):
            continue
        _move(session, lot.id, remaining=-amount)
        _entry(session, tenant_id, "expiry", key, available=-amount, lot_id=lot.id, memo="credits expired")
        done += 1
    session.flush()
    return done


def take_back(
    session: Session, tenant_id: str, lot: CreditLot, amount: int, *, key: str, memo: str
) -> tuple[int, int]:
    """Take ``amount`` back from a lot (a refunded purchase): what remains of it is removed,
    the rest becomes debt. Returns (taken from the lot, added to the debt)."""
    account = lock_account(session, tenant_id)
    if _applied(session, key):
        return 0, 0
    session.refresh(lot)
    taken = min(lot.remaining, amount)
    if taken:
        _move(session, lot.id, remaining=-taken)
        _entry(session, tenant_id, "refund", key, available=-taken, lot_id=lot.id, memo=memo)
    owed = amount - taken
    if owed:
        account.debt += owed
        _entry(session, tenant_id, "debt", f"{key}:debt", debt=owed, memo=memo)
    if not taken and not owed:
        return 0, 0
    session.flush()
    return taken, owed


@dataclass(frozen=True)
class Problem:
    tenant_id: str
    what: str


def check(session: Session, tenant_id: str | None = None) -> list[Problem]:
    """Prove that balances equal what the ledger says. Returns every discrepancy."""
    problems: list[Problem] = []

    sums = {
        lot_id: (available, held)
        for lot_id, available, held in session.execute(
            select(LedgerEntry.lot_id, func.sum(LedgerEntry.available), func.sum(LedgerEntry.held))
            .where(
                LedgerEntry.lot_id.is_not(None), *([LedgerEntry.tenant_id == tenant_id] if tenant_id else [])
            )
            .group_by(LedgerEntry.lot_id)
        ).all()
    }
    allocated = {
        lot_id: total
        for lot_id, total in session.execute(
            select(HoldAllocation.lot_id, func.sum(HoldAllocation.amount))
            .join(Hold, Hold.id == HoldAllocation.hold_id)
            .where(Hold.status == "held")
            .group_by(HoldAllocation.lot_id)
        ).all()
    }
    lots = select(CreditLot)
    if tenant_id:
        lots = lots.where(CreditLot.tenant_id == tenant_id)
    for lot in session.scalars(lots):
        available, held = sums.pop(lot.id, (0, 0))
        if int(available or 0) != lot.remaining:
            problems.append(
                Problem(lot.tenant_id, f"lot {lot.id}: remaining {lot.remaining}, ledger says {available}")
            )
        if int(held or 0) != lot.held:
            problems.append(Problem(lot.tenant_id, f"lot {lot.id}: held {lot.held}, ledger says {held}"))
        if int(allocated.get(lot.id, 0) or 0) != lot.held:
            problems.append(
                Problem(
                    lot.tenant_id,
                    f"lot {lot.id}: held {lot.held}, open holds allocate {allocated.get(lot.id, 0)}",
                )
            )
        if lot.remaining < 0 or lot.held < 0 or lot.remaining + lot.held > lot.amount:
            problems.append(Problem(lot.tenant_id, f"lot {lot.id}: numbers out of range"))
    for lot_id in sums:
        problems.append(Problem(tenant_id or "?", f"ledger entries for missing lot {lot_id}"))
    holds = select(Hold).where(Hold.status == "held")
    if tenant_id:
        holds = holds.where(Hold.tenant_id == tenant_id)
    for record in session.scalars(holds):
        total = session.scalar(
            select(func.coalesce(func.sum(HoldAllocation.amount), 0)).where(
                HoldAllocation.hold_id == record.id
            )
        )
        if int(total or 0) != record.amount:
            problems.append(
                Problem(record.tenant_id, f"hold {record.id}: amount {record.amount}, lots back {total}")
            )
    debts = select(Account)
    if tenant_id:
        debts = debts.where(Account.tenant_id == tenant_id)
    for account in session.scalars(debts):
        owed = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.debt), 0)).where(
                LedgerEntry.tenant_id == account.tenant_id
            )
        )
        if int(owed or 0) != account.debt:
            problems.append(Problem(account.tenant_id, f"debt {account.debt}, ledger says {owed}"))
    return problems


#: The kind of the entry that stands for purged ones (`carry_forward`).
CARRIED = "carried"
#: Ledger entries one delete statement names at most (a bound on bound parameters).
_DELETE_CHUNK = 500


@dataclass(frozen=True)
class Carried:
    """What one `carry_forward` pass did: entries deleted, carried-forward entries written."""

    deleted: int = 0
    written: int = 0


def carry_forward(session: Session, before: datetime, *, groups: int = 500, rows: int = 5000) -> Carried:
    """Purge the ledger entries made before ``before``, keeping `check` exact.

    For each tenant and each lot (and the lot-less debt entries), the entries older than
    ``before`` are replaced by one ``carried`` entry whose ``available``, ``held`` and
    ``debt`` are their sums, dated at the newest of them; when the sums are all zero (a lot
    spent or expired long ago, a debt paid) no entry is written. A lot's numbers still equal
    the sum of its entries and a debt the sum of its tenant's, so balances and `check` are
    unchanged. A group that is one carried entry already is left alone, so a second pass
    changes nothing.

    Each tenant's account row is locked first, like every money movement, and the deleted
    entries are named by id, so a movement made meanwhile can neither be lost nor counted
    twice. One pass takes ``groups`` (tenant, lot) groups and at most ``rows`` entries of
    each, oldest first; a longer group is folded again by the next pass, which shrinks it by
    ``rows - 1`` entries at least, so it ends as one carried entry."""
    if before.tzinfo is None:
        raise ValueError("carry_forward() takes an aware datetime")
    if rows < 2:
        raise ValueError("carry_forward() folds at least two entries at a time")
    due = session.execute(
        select(LedgerEntry.tenant_id, LedgerEntry.lot_id)
        .where(LedgerEntry.created_at < before)
        .group_by(LedgerEntry.tenant_id, LedgerEntry.lot_id)
        .having((func.count() > 1) | (func.sum(case((LedgerEntry.kind == CARRIED, 0), else_=1)) > 0))
        .order_by(LedgerEntry.tenant_id, LedgerEntry.lot_id)
        .limit(groups)
    ).all()
    deleted = written = 0
    locked: set[str] = set()
    for tenant_id, lot_id in due:
        if tenant_id not in locked:
            lock_account(session, tenant_id)
            locked.add(tenant_id)
        same_lot = LedgerEntry.lot_id.is_(None) if lot_id is None else LedgerEntry.lot_id == lot_id
        entries = session.execute(
            select(
                LedgerEntry.id, LedgerEntry.kind, LedgerEntry.available, LedgerEntry.held,
                LedgerEntry.debt, LedgerEntry.created_at,
            )
            .where(LedgerEntry.tenant_id == tenant_id, same_lot, LedgerEntry.created_at < before)
            .order_by(LedgerEntry.created_at, LedgerEntry.id)
            .limit(rows)
        ).all()  # fmt: skip
        if not entries or (len(entries) == 1 and entries[0].kind == CARRIED):
            continue  # folded meanwhile by another pass
        ids = [row.id for row in entries]
        for start in range(0, len(ids), _DELETE_CHUNK):
            chunk = ids[start : start + _DELETE_CHUNK]
            gone = session.execute(
                delete(LedgerEntry)
                .where(LedgerEntry.id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            if getattr(gone, "rowcount", None) != len(chunk):  # the lock should make this impossible
                raise RuntimeError(f"ledger entries of {tenant_id} changed while they were carried forward")
            deleted += len(chunk)
        available = sum(int(row.available) for row in entries)
        held = sum(int(row.held) for row in entries)
        debt = sum(int(row.debt) for row in entries)
        if not (available or held or debt):
            continue
        newest = max(row.created_at for row in entries)
        entry_id = new_id("txn")
        session.connection().execute(
            _ENTRY,
            {
                "id": entry_id, "tenant_id": tenant_id, "kind": CARRIED,
                "idempotency_key": f"carried:{entry_id}", "available": available, "held": held,
                "debt": debt, "lot_id": lot_id, "job_id": None, "created_at": newest,
                "memo": f"balance carried forward from {len(entries)} entries up to {newest:%Y-%m-%d}",
            },
        )  # fmt: skip
        written += 1
    session.flush()
    return Carried(deleted, written)
