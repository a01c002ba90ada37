"""Fairness: a second tenant's jobs beside one tenant's backlog, with fair admission and
with plain FIFO, side by side.

Tenant A queues a backlog of small jobs; then tenant B submits 20. B's p95 time from
submit to finished is compared with B's p95 on an idle system. Target: at most 3x idle with
fair admission (plain FIFO puts B behind the whole backlog).

    python -m bench.fairness            # backlog of 2,000
    python -m bench.fairness --quick    # backlog of 200 (smoke)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dramatiq import Worker
from PIL import Image
from sqlalchemy import select

from bench.common import percentile, redis_url
from faktry import migrate
from faktry.config import Settings
from faktry.db import transaction
from faktry.tenancy import create_tenant
from pipelines import files, services
from pipelines.admission import AdmittingSender
from pipelines.models import FINISHED, Job
from pipelines.routing import RoutingLimits
from quotas import ledger
from quotas.limits import tier_limits
from workers.broker import make_sender, setup

THREADS = 2


def _tenant(rt: Any, name: str, image: Path) -> tuple[str, str]:
    ctx = rt.context
    with transaction(ctx.sessions) as s:
        tenant, _ = create_tenant(
            s, email=f"{name}-{time.monotonic_ns()}@bench.local", tier="studio", bcrypt_rounds=4
        )
        ledger.add_credits(s, tenant.id, 10**9, source="grant", key=f"bench:{tenant.id}")
        tid = tenant.id
    with transaction(ctx.sessions) as s:
        limits = tier_limits(s, "studio")
    # The upload's own session must not hold a transaction while its quota is reserved.
    upload_session = ctx.sessions()
    upload_session.info["tenant_id"] = tid
    try:
        with files.ingest_upload(
            upload_session, ctx.sessions, ctx.storage, tenant_id=tid, limits=limits, staged=image,
            filename="x.png", probe_timeout=30, max_image_pixels=10**8,
        ) as row:  # fmt: skip
            upload_session.commit()
            file_id = row.id
    finally:
        upload_session.close()
    return tid, file_id


def _submit(rt: Any, sender: Any, policy: services.Policy, tenant_id: str, file_id: str, n: int) -> list[str]:
    body = {"type": "image.resize", "input": {"file_id": file_id}, "params": {"width": 8, "height": 8}}
    made = []
    for _ in range(n):
        with transaction(rt.context.sessions, tenant_id=tenant_id) as s:
            job = services.submit(s, tenant_id=tenant_id, body=body, idempotency_key=None, policy=policy).job
        made.append(job)
    services.dispatch(sender, made)
    return [j.id for j in made]


def _wait(rt: Any, ids: list[str], timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        with transaction(rt.context.sessions) as s:
            rows = s.execute(select(Job.status, Job.created_at, Job.finished_at).where(Job.id.in_(ids))).all()
        if all(r.status in FINISHED for r in rows):
            return [(r.finished_at - r.created_at).total_seconds() for r in rows]
        if time.monotonic() > deadline:
            raise TimeoutError("jobs did not finish in time")
        time.sleep(0.05)


def run(tmp: Path, url: str, namespace: str, backlog: int, fair: bool) -> dict[str, float]:
    db = f"sqlite:///{tmp / f'bench-{fair}.db'}"
    migrate.upgrade(db)
    settings = Settings(
        var_dir=tmp / f"var-{fair}", database_url=db, redis_url=url, redis_namespace=f"{namespace}-{fair}",
        storage_url=f"file:{tmp / f'storage-{fair}'}", secret_key="bench", bcrypt_rounds=4,
        fair_admission=fair, admission_depth=THREADS * 2, worker_timeout_ms=10, job_heartbeat_seconds=0.5,
    )  # fmt: skip
    rt = setup(settings)
    image = tmp / "in.png"
    Image.new("RGB", (64, 64), (200, 100, 50)).save(image)
    sender = make_sender(settings, rt.broker, url, rt.context.sessions)
    assert isinstance(sender, AdmittingSender) == fair
    policy = services.Policy(routing=RoutingLimits(10**12, 10**9), prices=rt.context.prices)
    quiet, quiet_file = _tenant(rt, "quiet", image)
    noisy, noisy_file = _tenant(rt, "noisy", image)
    rt.broker.emit_after("process_boot")
    worker = Worker(rt.broker, worker_threads=THREADS, worker_timeout=10)
    worker.start()
    try:
        idle = _wait(rt, _submit(rt, sender, policy, quiet, quiet_file, 20), timeout=120)
        # The backlog is all queued before the quiet tenant submits: workers wait meanwhile.
        worker.pause()
        _submit(rt, sender, policy, noisy, noisy_file, backlog)
        quiet_ids = _submit(rt, sender, policy, quiet, quiet_file, 20)
        worker.resume()
        busy = _wait(rt, quiet_ids, timeout=900)
    finally:
        worker.stop()
        rt.broker.close()
    return {
        "idle_p95": percentile(idle, 95),
        "busy_p95": percentile(busy, 95),
        "busy_mean": statistics.fmean(busy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    backlog = 200 if args.quick else 2000
    with tempfile.TemporaryDirectory() as tmp, redis_url(Path(tmp)) as (url, namespace):
        fair = run(Path(tmp), url, namespace, backlog, fair=True)
        fifo = run(Path(tmp), url, namespace, backlog, fair=False)
    print(f"a second tenant's 20 jobs beside a backlog of {backlog} (p95, submit to finished)")
    print(
        f"  idle system          {fair['idle_p95']:7.2f} s (fair run)   {fifo['idle_p95']:7.2f} s (FIFO run)"
    )
    print(
        f"  fair admission       {fair['busy_p95']:7.2f} s  -> {fair['busy_p95'] / fair['idle_p95']:.1f}x idle (target <= 3x)"
    )
    print(
        f"  plain FIFO           {fifo['busy_p95']:7.2f} s  -> {fifo['busy_p95'] / fifo['idle_p95']:.1f}x idle"
    )
    print(f"  ratio FIFO / fair:   {fifo['busy_p95'] / fair['busy_p95']:.1f}x")


if __name__ == "__main__":
    main()
