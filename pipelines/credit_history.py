"""What an account's credits went to, in plain lines for people (the credits page, and
``GET /v1/credits/history``): one line per job (what ran and what it was charged: the
captured amount; nothing for a job that failed or was canceled), one per credit lot added
(a purchase, a grant, starter credits, a refunded job) and one per removal (expiry, a
refund by the payment provider). Amounts are millicredits and never negative; the ledger
itself (``/v1/account/transactions``) keeps the signed movements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from pipelines import pagination
from pipelines.models import Job
from quotas.models import CreditLot, Hold, LedgerEntry


def lines(
    session: Session,
    tenant_id: str,
    limit: int,
    after: tuple[Any, ...] | None,
    names: dict[str, dict[str, str]],
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's lines, newest first, after the cursor ``after``; ``names`` are
    the job types' names for people (`pipelines.catalog.Labels.job_types`). Returns the
    lines and the next page's cursor (None on the last page)."""

    def newest(stmt: Any, created: Any, ident: Any) -> list[Any]:
        if after is not None:
            stmt = stmt.where(tuple_(created, ident) < tuple_(*after))
        return list(session.execute(stmt.order_by(created.desc(), ident.desc()).limit(limit + 1)))

    jobs = newest(
        select(Job, Hold).outerjoin(Hold, Hold.job_id == Job.id).where(Job.tenant_id == tenant_id),
        Job.created_at,
        Job.id,
    )
    lots = newest(
        select(CreditLot).where(CreditLot.tenant_id == tenant_id), CreditLot.created_at, CreditLot.id
    )
    removals = newest(
        select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id, _REMOVALS),
        LedgerEntry.created_at,
        LedgerEntry.id,
    )
    found = sorted(
        [_job_line(job, hold, names) for job, hold in jobs]
        + [_lot_line(lot) for (lot,) in lots]
        + [_removal_line(entry) for (entry,) in removals],
        key=lambda line: (line["_at"], line["id"]),
        reverse=True,
    )
    next_cursor = (
        pagination.encode(found[limit - 1]["_at"], found[limit - 1]["id"]) if len(found) > limit else None
    )
    return [{k: v for k, v in line.items() if k != "_at"} for line in found[:limit]], next_cursor


#: Ledger movements that are lines of their own: credits that left without a job.
_REMOVALS = or_(
    LedgerEntry.kind == "expiry",
    (LedgerEntry.kind == "refund") & (LedgerEntry.available < 0),
    (LedgerEntry.kind == "debt") & (LedgerEntry.debt > 0),
)


def _line(ident: str, at: datetime, kind: str, description: str, **amounts: Any) -> dict[str, Any]:
    return {
        "object": "credit_history_line",
        "id": ident,
        "kind": kind,
        "created_at": at.isoformat(),
        "description": description,
        "added": 0,
        "charged": 0,
        "held": 0,
        "removed": 0,
        "job_id": None,
        **amounts,
        "_at": at,
    }


def _job_line(job: Job, hold: Hold | None, names: dict[str, dict[str, str]]) -> dict[str, Any]:
    what = names.get(job.type, {}).get("name") or job.type
    what += f" ({job.model})" if job.model else ""
    if hold is None:
        return _line(job.id, job.created_at, "job", what, job_id=job.id, job_status=job.status, charge="none")
    charged = hold.captured if hold.status == "captured" else 0
    held = hold.amount if hold.status == "held" else 0
    charge = {"captured": "charged", "released": "none"}.get(hold.status, "held")
    return _line(job.id, job.created_at, "job", what, job_id=job.id, job_status=job.status,
                 charged=charged, held=held, charge=charge)  # fmt: skip


_LOT_WORDS = {
    "purchase": "Credits bought",
    "grant": "Credits granted",
    "starter": "Starter credits",
    "refund": "Credits given back for a job",
}


def _lot_line(lot: CreditLot) -> dict[str, Any]:
    what = _LOT_WORDS.get(lot.source, f"Credits added ({lot.source})")
    if lot.source == "grant" and lot.reference:
        what = f"{what}: {lot.reference}"
    return _line(
        lot.id, lot.created_at, lot.source, what, added=lot.amount, expires_at=lot.expires_at.isoformat()
    )


def _removal_line(entry: LedgerEntry) -> dict[str, Any]:
    if entry.kind == "expiry":
        return _line(entry.id, entry.created_at, "expiry", "Credits expired", removed=-entry.available)
    if entry.kind == "debt":
        return _line(entry.id, entry.created_at, "debt", "Owed after a refund of credits already spent",
                     removed=entry.debt)  # fmt: skip
    return _line(entry.id, entry.created_at, "refunded", "Credits taken back after a refund",
                 removed=-entry.available)  # fmt: skip
