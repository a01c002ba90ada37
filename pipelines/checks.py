"""Checks that recompute what faktry keeps as running totals, from the ground truth.

`storage_usage` compares each tenant's counted storage with the sizes of its files and with
what storage really holds (objects missing, objects no file row knows, sizes that differ).
The ledger's own check is `quotas.ledger.check`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quotas.models import Account, StorageReservation
from storage.interface import Storage
from storage.models import File


@dataclass(frozen=True)
class Problem:
    tenant_id: str
    what: str


def storage_usage(session: Session, storage: Storage, *, tenant_id: str | None = None) -> list[Problem]:
    problems: list[Problem] = []
    accounts = select(Account)
    if tenant_id:
        accounts = accounts.where(Account.tenant_id == tenant_id)
    for account in session.scalars(accounts):
        tid = account.tenant_id
        files = {
            key: size
            for key, size in session.execute(select(File.storage_key, File.size).where(File.tenant_id == tid))
        }
        counted = sum(files.values())
        if account.storage_used_bytes != counted:
            problems.append(
                Problem(tid, f"storage used {account.storage_used_bytes}, files add up to {counted}")
            )
        reserved = session.scalar(
            select(func.coalesce(func.sum(StorageReservation.bytes), 0)).where(
                StorageReservation.tenant_id == tid
            )
        )
        if account.storage_reserved_bytes != int(reserved or 0):
            problems.append(
                Problem(
                    tid,
                    f"storage reserved {account.storage_reserved_bytes}, reservations add up to {reserved}",
                )
            )
        stored = set(storage.list(f"t/{tid}/"))
        for key, size in files.items():
            if key not in stored:
                problems.append(Problem(tid, f"file object missing from storage: {key}"))
            elif storage.size(key) != size:
                problems.append(
                    Problem(tid, f"file object {key} holds {storage.size(key)} bytes, its row says {size}")
                )
        # Objects of attempts still running live under jobs/<id>/a<n>/ until they are recorded,
        # and uploads arriving in pieces under uploads/<id>/ (the scheduler expires those).
        orphans = [k for k in stored - set(files) if "/jobs/" not in k and "/uploads/" not in k]
        problems.extend(Problem(tid, f"object without a file row: {key}") for key in orphans)
    return problems
