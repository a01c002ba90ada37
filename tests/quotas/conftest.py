"""Fixtures of the quota and billing tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from faktry import clock
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.tenancy import create_tenant
from quotas import ledger
from tests.stripe_fake import StripeFake

#: The ledger tests' clock: frozen, so lots expire exactly when a test says.
START = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    """The Stripe stand-in, served on a free loopback port for one test."""
    fake = StripeFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on this test's database, with the clock frozen at `START`."""
    clock.freeze(START)
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def tenant_id(sessions: sessionmaker[Session]) -> str:
    with transaction(sessions) as s:
        tenant, _ = create_tenant(s, email=f"t-{id(s)}@example.com", bcrypt_rounds=4)
        return str(tenant.id)


def grant(sessions: sessionmaker[Session], tenant_id: str, amount: int, key: str, at: Any = None) -> Any:
    with transaction(sessions) as s:
        return ledger.add_credits(s, tenant_id, amount, source="grant", key=key, bought_at=at)
