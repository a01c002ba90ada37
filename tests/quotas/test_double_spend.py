"""Many concurrent submits against a small balance: exactly balance ÷ price are accepted.

On PostgreSQL from threads (each with its own connection); on SQLite from several
processes, since SQLite's locking is per process and per file.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from sqlalchemy import func, select

from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.errors import FaktryError
from pipelines import services
from pipelines.routing import RoutingLimits
from quotas import ledger
from quotas.models import Hold
from quotas.pricing import PriceList
from tests import services as svc
from tests.web.helpers import upload

PRICE = 100  # media.probe
POLICY = services.Policy(routing=RoutingLimits(10**12, 10**9), prices=PriceList())


def _submit(url: str, tenant_id: str, file_id: str) -> str:
    # Each attempt is its own client; its connection is closed when it is done, so that 40
    # racing clients a round never add up to more than PostgreSQL's connection limit.
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions, tenant_id=tenant_id) as s:
            services.submit(
                s,
                tenant_id=tenant_id,
                body={"type": "media.probe", "input": {"file_id": file_id}},
                idempotency_key=None,
                policy=POLICY,
            )
        return "accepted"
    except FaktryError as err:
        return err.code
    finally:
        engine.dispose()


def _submit_in_process(args: tuple[str, str, str, int]) -> list[str]:
    url, tenant_id, file_id, count = args
    return [_submit(url, tenant_id, file_id) for _ in range(count)]


def _state(url, tenant_id):
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as s:
        funds = ledger.balance(s, tenant_id)
        holds = s.scalar(select(func.count()).select_from(Hold).where(Hold.tenant_id == tenant_id))
        found = funds, holds, ledger.check(s)
    engine.dispose()
    return found


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_submits_accept_exactly_what_the_balance_covers(
    client, make_tenant, clip_small, settings, round_
):
    tenant = make_tenant(credits=0)
    file_id = upload(client, tenant, clip_small).json["id"]
    url = settings.resolved_database_url
    covers = 7
    with svc.db_session(url) as s:
        ledger.add_credits(s, tenant.id, covers * PRICE + PRICE // 2, source="grant", key=f"race-{round_}")
    attempts = 40
    if url.startswith("sqlite"):
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            outcomes = [
                o
                for batch in pool.map(_submit_in_process, [(url, tenant.id, file_id, 10)] * 4)
                for o in batch
            ]
    else:
        outcomes = []
        barrier = threading.Barrier(attempts)

        def go():
            barrier.wait()
            outcomes.append(_submit(url, tenant.id, file_id))

        threads = [threading.Thread(target=go) for _ in range(attempts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(outcomes) == attempts
    assert outcomes.count("accepted") == covers
    assert outcomes.count("insufficient_credits") == attempts - covers
    funds, holds, problems = _state(url, tenant.id)
    assert holds == covers
    assert funds.available == PRICE // 2 and funds.held == covers * PRICE
    assert funds.available >= 0
    assert problems == []


def test_a_refused_submit_leaves_no_job_and_no_hold(client, make_tenant, clip_small, settings):
    tenant = make_tenant(credits=0)
    file_id = upload(client, tenant, clip_small).json["id"]
    r = client.post(
        "/v1/jobs", json={"type": "media.probe", "input": {"file_id": file_id}}, headers=tenant.headers
    )
    assert r.status_code == 402
    assert r.json["error"]["code"] == "insufficient_credits"
    assert r.json["error"]["price"] == PRICE and r.json["error"]["available"] == 0
    assert client.get("/v1/jobs", headers=tenant.headers).json["data"] == []
    funds, holds, problems = _state(settings.resolved_database_url, tenant.id)
    assert holds == 0 and problems == [] and funds.held == 0
