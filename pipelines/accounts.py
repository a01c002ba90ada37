"""Deleting an account and exporting its data, as the privacy policy promises.

Deletion removes the person and the content: the users (their personal data), API keys,
files (and their bytes in storage) and jobs (their prompts and parameters). Jobs still
running are canceled first, so their holds are released. Credits left in lots are forfeited
with ledger entries. What stays is pseudonymous: the tenant id on the ledger (kept seven years
for legal and tax reasons), and moderation log entries (kept at most twelve months for safety
audits, then swept).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from faktry import clock
from faktry.tenancy import ApiKey, Tenant, User
from pipelines import files
from pipelines.models import FINISHED, Job
from pipelines.services import cancel, to_dict
from quotas import ledger
from quotas.models import CreditLot, LedgerEntry
from storage.models import File


def export(session: Session, tenant_id: str) -> dict[str, Any]:
    """Everything faktry keeps about an account, as one JSON document."""
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    users = session.scalars(select(User).where(User.tenant_id == tenant_id)).all()
    return {
        "object": "export",
        "exported_at": clock.now().isoformat(),
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "tier": tenant.tier,
            "created_at": tenant.created_at.isoformat(),
        },
        "users": [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role,
                "first_name": u.first_name,
                "last_name": u.last_name,
                "company": u.company,
                "industry": u.industry,
                "website": u.website,
                "created_at": u.created_at.isoformat(),
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in users
        ],
        "api_keys": [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id))
        ],
        "files": [files.to_dict(f) for f in session.scalars(select(File).where(File.tenant_id == tenant_id))],
        "jobs": [to_dict(j) for j in session.scalars(select(Job).where(Job.tenant_id == tenant_id))],
        "transactions": [
            {
                "id": e.id,
                "created_at": e.created_at.isoformat(),
                "kind": e.kind,
                "available": e.available,
                "held": e.held,
                "debt": e.debt,
                "job_id": e.job_id,
                "memo": e.memo,
            }
            for e in session.scalars(select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id))
        ],
    }


def delete_account(session: Session, tenant_id: str) -> list[str] | None:
    """Delete the account's people and content; returns the storage prefix to remove once
    the transaction has committed. While a job still runs it only asks it to stop and returns
    None: the caller commits that and asks again shortly."""
    running = False
    unfinished = select(Job).where(Job.tenant_id == tenant_id, Job.status.not_in(FINISHED))
    for job in session.scalars(unfinished).all():
        cancel(session, job.id)  # queued jobs end here, their holds released
        running = running or job.status not in FINISHED
    if running:
        return None
    account = ledger.lock_account(session, tenant_id)
    for lot in session.scalars(
        select(CreditLot).where(CreditLot.tenant_id == tenant_id, CreditLot.remaining > 0)
    ):
        session.add(
            LedgerEntry(
                tenant_id=tenant_id, kind="adjustment", available=-lot.remaining, lot_id=lot.id,
                idempotency_key=f"account-deleted:{lot.id}", memo="forfeited: account deleted",
            )
        )  # fmt: skip
        lot.remaining = 0
    session.execute(delete(File).where(File.tenant_id == tenant_id, File.root_id.is_not(None)))
    session.execute(delete(File).where(File.tenant_id == tenant_id))
    session.execute(delete(Job).where(Job.tenant_id == tenant_id))
    session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant_id))
    session.execute(delete(User).where(User.tenant_id == tenant_id))
    account.storage_used_bytes = 0
    account.storage_reserved_bytes = 0
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(status="deleted", name=""))
    session.flush()
    return [f"t/{tenant_id}/"]
