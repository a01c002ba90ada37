"""Cost of each database step of a job's path with 1,000 versus 100,000 jobs in the system.

No step on a job's path may scan all jobs: each should cost the same however many jobs the
database holds. A fresh database (an SQLite file, and a fresh PostgreSQL database when one
answers on 127.0.0.1:5432) is filled with N finished jobs through SQLAlchemy Core: spread
over the last 30 days and over many tenants (100 jobs each), one tenant (the one the steps
act for) holding a tenth of them; succeeded (90 %), failed (7 %) and canceled (3 %); half of
them ``media.probe``, half ``image.resize`` with a stored output; each with its events
(created, started, finished), its hold (captured or released), the hold's allocation and
its ledger entries. Then, in this process, each step is timed K times:

- submit: `pipelines.services.submit` of a ``media.probe`` job with an Idempotency-Key (tier,
  input file, job row, credit hold) in its transaction, then `services.dispatch`'s stamp
  (the sender records the message; no broker);
- run: `pipelines.runner.run` of that job with the runtime `workers.broker.setup` builds
  (admit with the running-slot lease in Redis, claim, the probe of a 64x48 PNG, success
  recorded, hold captured, metrics);
- GET /v1/jobs/{id}, GET /v1/jobs/{id}/events, GET /v1/jobs (first page), a page from the
  middle of the tenant's history (cursor), GET /v1/jobs?status=running, GET /v1/account:
  through the Flask app with an API key (`flask.testing` client, no network);
- one reconciler pass (`pipelines.reconcile.reconcile`) with nothing to repair;
- and, per exported entry, the ledger's CSV export (``GET /v1/account/transactions?format=csv``),
  which pages through the tenant's whole ledger.

The figures are medians in ms; the ratio big/small should stay near 1. PostgreSQL is
ANALYZEd after the fill (autovacuum would do it); SQLite is not (faktry never runs ANALYZE
on the zero-setup file), so SQLite's planner works without statistics, as it does in use.

    python -m bench.scale            # 1,000 vs 100,000 jobs, K = 30 (reconciler K = 5)
    python -m bench.scale --quick    # 1,000 vs 10,000 jobs, K = 8 (reconciler K = 3) (smoke)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.common import bench_settings, bench_tier, postgres_database, redis_url, tiny_png
from faktry import clock, migrate
from faktry.db import Base, make_engine, make_sessionmaker, new_id, transaction
from faktry.tenancy import create_api_key, create_tenant
from pipelines import pagination, runner, services
from pipelines.media import images
from pipelines.models import Job
from pipelines.reconcile import reconcile
from pipelines.routing import RoutingLimits
from quotas import models as _quota_tables  # noqa: F401  (Base.metadata must know every table)
from storage import models as _storage_tables  # noqa: F401
from storage.interface import Storage

JOBS_PER_TENANT = 100
BENCH_SHARE = 10  # the benchmark's tenant holds 1/10 of all jobs
PRICE = 100
BATCH = 5000


class Recorder:
    """A `pipelines.services.Sender` that only records: the steps here time the database."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, queue: str, job_id: str) -> None:
        self.sent.append((queue, job_id))


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), BATCH):
        yield rows[i : i + BATCH]


def fill(database_url: str, n_jobs: int, tier: str, storage: Storage, png: Path) -> dict[str, Any]:
    """N finished jobs with their events, holds and ledger; returns the benchmark tenant."""
    t = Base.metadata.tables
    rng = random.Random(n_jobs)
    now = clock.now()
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        tenant, user = create_tenant(
            session, email=f"scale-{uuid.uuid4().hex[:8]}@bench.local", tier=tier, bcrypt_rounds=4
        )
        _, key = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
        bench_id = tenant.id
    bench_jobs = n_jobs // BENCH_SHARE
    others = max(1, (n_jobs - bench_jobs) // JOBS_PER_TENANT)
    tenants = [bench_id] + [new_id("ten") for _ in range(others)]
    shares = [bench_jobs] + [(n_jobs - bench_jobs) // others] * others
    shares[1] += n_jobs - sum(shares)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in t}
    bench_file = new_id("fil")
    media = images.probe_image(png).to_dict()
    sha, size = "0" * 64, png.stat().st_size  # no step reads the digest
    for tenant_id, share in zip(tenants, shares, strict=True):
        if tenant_id != bench_id:
            rows["tenants"].append(
                {"id": tenant_id, "name": tenant_id, "tier": "creator", "status": "active", "created_at": now}
            )
        file_id = bench_file if tenant_id == bench_id else new_id("fil")
        storage_key = f"t/{tenant_id}/files/{file_id}/original.png"
        file_row = {
            "id": file_id, "tenant_id": tenant_id, "origin": "upload", "storage_key": storage_key,
            "size": size, "content_type": "image/png", "kind": "image", "sha256": sha, "media": media,
            "filename": "in.png", "job_id": None, "root_id": None, "relpath": None, "total_size": size,
            "file_count": 1, "created_at": now - timedelta(days=31),
        }  # fmt: skip
        rows["files"].append(file_row)
        lot_id = new_id("lot")
        amount = PRICE * share + 10**12
        spent = 0
        for _ in range(share):
            job_id = new_id("job")
            created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
            started = created + timedelta(seconds=rng.uniform(0.05, 5))
            finished = started + timedelta(seconds=rng.uniform(0.1, 30))
            roll = rng.random()
            status = "succeeded" if roll < 0.90 else "failed" if roll < 0.97 else "canceled"
            kind = "image.resize" if rng.random() < 0.5 else "media.probe"
            charged = PRICE if status == "succeeded" else 0
            spent += charged
            never_started = status == "canceled"
            rows["jobs"].append(
                {
                    "id": job_id, "tenant_id": tenant_id, "type": kind, "status": status,
                    "input_file_id": file_id, "input": {"file_id": file_id}, "model": None,
                    "provider": None, "provider_request_id": None, "provider_state": {},
                    "params": {"width": 32, "height": 24, "mode": "fit", "format": "jpeg", "quality": 85}
                    if kind == "image.resize" else {},
                    "metadata": {}, "result": {"media": media} if kind == "media.probe" and charged else {},
                    "queue": "local.small", "progress": 1.0 if charged else 0.0,
                    "attempts": 0 if never_started else 1,
                    "error_code": "invalid_media" if status == "failed" else None,
                    "error_message": "image could not be decoded" if status == "failed" else None,
                    "idempotency_key": f"k-{job_id}" if rng.random() < 0.5 else None,
                    "request_hash": "0" * 64, "cancel_requested": status == "canceled",
                    "cost_estimated": PRICE, "cost_held": PRICE, "cost_charged": charged,
                    "lease_token": None, "lease_expires_at": None, "created_at": created,
                    "updated_at": finished, "enqueued_at": created,
                    "started_at": None if never_started else started, "finished_at": finished,
                }
            )  # fmt: skip
            event = {"job_id": job_id, "tenant_id": tenant_id, "data": {}}
            rows["job_events"].append(
                {**event, "at": created, "kind": "created", "status": "queued", "attempt": 0}
            )
            if not never_started:
                rows["job_events"].append(
                    {**event, "at": started, "kind": "started", "status": "running", "attempt": 1}
                )
            rows["job_events"].append(
                {
                    **event,
                    "at": finished,
                    "kind": status,
                    "status": status,
                    "attempt": 0 if never_started else 1,
                }
            )
            if kind == "image.resize" and charged:
                out_id = new_id("fil")
                rows["files"].append(
                    {
                        **file_row, "id": out_id, "origin": "output", "content_type": "image/jpeg",
                        "storage_key": f"t/{tenant_id}/jobs/{job_id}/a1/image/image.jpg",
                        "filename": "image.jpg", "job_id": job_id, "created_at": finished,
                    }
                )  # fmt: skip
                rows["job_outputs"].append(
                    {"id": new_id("out"), "job_id": job_id, "tenant_id": tenant_id, "name": "image",
                     "file_id": out_id, "attempt": 1}
                )  # fmt: skip
            hold_id = new_id("hld")
            rows["holds"].append(
                {"id": hold_id, "tenant_id": tenant_id, "job_id": job_id, "amount": PRICE, "captured": charged,
                 "status": "captured" if charged else "released", "created_at": created, "resolved_at": finished}
            )  # fmt: skip
            rows["hold_allocations"].append({"hold_id": hold_id, "lot_id": lot_id, "amount": PRICE})
            entry = {"tenant_id": tenant_id, "debt": 0, "lot_id": lot_id, "job_id": job_id, "memo": ""}
            rows["ledger_entries"].append(
                {**entry, "id": new_id("txn"), "kind": "hold", "available": -PRICE, "held": PRICE,
                 "idempotency_key": f"hold:{job_id}:{lot_id}", "created_at": created}
            )  # fmt: skip
            rows["ledger_entries"].append(
                {**entry, "id": new_id("txn"), "kind": "capture" if charged else "release",
                 "available": 0 if charged else PRICE, "held": -PRICE,
                 "idempotency_key": f"{'capture' if charged else 'release'}:{job_id}:{lot_id}",
                 "created_at": finished}
            )  # fmt: skip
        rows["credit_lots"].append(
            {"id": lot_id, "tenant_id": tenant_id, "source": "grant", "amount": amount, "remaining": amount - spent,
             "held": 0, "reference": None, "created_at": now - timedelta(days=31),
             "expires_at": now + timedelta(days=300)}
        )  # fmt: skip
        rows["ledger_entries"].append(
            {"id": new_id("txn"), "tenant_id": tenant_id, "kind": "grant", "available": amount, "held": 0,
             "debt": 0, "lot_id": lot_id, "job_id": None, "idempotency_key": f"grant:{lot_id}", "memo": "",
             "created_at": now - timedelta(days=31)}
        )  # fmt: skip
        rows["accounts"].append(
            {"tenant_id": tenant_id, "debt": 0, "storage_used_bytes": size * (1 + share),
             "storage_reserved_bytes": 0, "stripe_customer_id": None, "updated_at": now}
        )  # fmt: skip
    order = ["tenants", "accounts", "credit_lots", "files", "jobs", "job_events", "job_outputs", "holds",
             "hold_allocations", "ledger_entries"]  # fmt: skip
    with engine.begin() as conn:
        for name in order:
            for chunk in _chunks(rows[name]):
                conn.execute(insert(t[name]), chunk)
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
    storage.put_file(f"t/{bench_id}/files/{bench_file}/original.png", png, content_type="image/png")
    with engine.connect() as conn:
        counted = conn.scalar(select(func.count()).select_from(t["jobs"]))
        middle = conn.execute(
            select(t["jobs"].c.created_at, t["jobs"].c.id)
            .where(t["jobs"].c.tenant_id == bench_id)
            .order_by(t["jobs"].c.created_at.desc(), t["jobs"].c.id.desc())
            .offset(bench_jobs // 2)
            .limit(1)
        ).one()
        sample = list(
            conn.scalars(select(t["jobs"].c.id).where(t["jobs"].c.tenant_id == bench_id).limit(2000))
        )
    engine.dispose()
    return {
        "tenant_id": bench_id,
        "key": key,
        "file_id": bench_file,
        "jobs": counted,
        "rows": sum(len(r) for r in rows.values()),
        "cursor": pagination.encode(middle.created_at, middle.id),
        "sample": sample,
    }


class Steps:
    """One filled database and the steps timed on it, each a callable."""

    def __init__(self, tmp: Path, url: str, namespace: str, database_url: str, n_jobs: int) -> None:
        from web import create_app
        from workers.broker import setup

        migrate.upgrade(database_url)
        settings = bench_settings(tmp, redis=url, namespace=namespace, database_url=database_url)
        self.runtime = setup(settings)
        ctx = self.runtime.context
        started = time.perf_counter()
        fx = fill(database_url, n_jobs, bench_tier(database_url), ctx.storage, tiny_png(tmp / "in.png"))
        self.fill_seconds = time.perf_counter() - started
        self.jobs, self.rows = fx["jobs"], fx["rows"]
        tenant_id = fx["tenant_id"]
        sender = Recorder()
        policy = services.Policy(
            routing=RoutingLimits(settings.large_input_bytes, settings.large_input_seconds), prices=ctx.prices
        )
        body = {"type": "media.probe", "input": {"file_id": fx["file_id"]}}
        submitted: list[str] = []

        def submit() -> None:
            with transaction(ctx.sessions, tenant_id=tenant_id) as session:
                job = services.submit(
                    session, tenant_id=tenant_id, body=body, idempotency_key=f"bench-{uuid.uuid4().hex}",
                    policy=policy,
                ).job  # fmt: skip
            services.dispatch(sender, [job])
            submitted.append(job.id)

        def run() -> None:
            job_id = submitted.pop()
            runner.run(ctx, job_id)
            with transaction(ctx.sessions) as session:
                status = session.scalar(select(Job.status).where(Job.id == job_id))
            if status != "succeeded":
                raise RuntimeError(f"job {job_id} ended {status}")

        client = create_app(settings, sender=sender).test_client()
        headers = {"Authorization": f"Bearer {fx['key']}"}
        rng = random.Random(7)

        def get(path: Callable[[], str]) -> Callable[[], None]:
            def op() -> None:
                where = path()
                r = client.get(where, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(
                        f"GET {where} answered {r.status_code}: {r.get_data(as_text=True)[:300]}"
                    )

            return op

        def export() -> int:
            r = client.get("/v1/account/transactions?format=csv", headers=headers)
            lines = r.get_data(as_text=True).count("\n")
            if r.status_code != 200 or lines < 2:
                raise RuntimeError(f"the CSV export answered {r.status_code} with {lines} lines")
            return lines - 1  # the header

        self.export = export

        # Run in this order: each submit leaves a queued job for a run to take.
        self.steps: dict[str, Callable[[], None]] = {
            "submit (job + hold + dispatch stamp)": submit,
            "run (admit, claim, probe, succeed, capture)": run,
            "GET /v1/jobs/{id}": get(lambda: f"/v1/jobs/{rng.choice(fx['sample'])}"),
            "GET /v1/jobs/{id}/events": get(lambda: f"/v1/jobs/{rng.choice(fx['sample'])}/events"),
            "GET /v1/jobs (first page of 20)": get(lambda: "/v1/jobs"),
            "GET /v1/jobs?cursor= (mid-history page)": get(lambda: f"/v1/jobs?cursor={fx['cursor']}"),
            "GET /v1/jobs?status=running": get(lambda: "/v1/jobs?status=running"),
            "GET /v1/account": get(lambda: "/v1/account"),
            RECONCILE: lambda: reconcile(ctx.sessions, sender, ctx.storage, settings) and None,
        }

    def close(self) -> None:
        self.runtime.broker.close()


RECONCILE = "reconciler pass (nothing to repair)"


def side_by_side(
    small: Steps, big: Steps, reps: int, passes: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Each step on both databases, alternating (and alternating which goes first), so that
    the machine's noise falls on both alike."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name in small.steps:
        pair = (small.steps[name], big.steps[name])
        for op in pair:
            op()  # warm: caches, prepared statements, the key cache
        took: tuple[list[float], list[float]] = ([], [])
        for i in range(passes if name == RECONCILE else reps):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for which in order:
                start = time.perf_counter()
                pair[which]()
                took[which].append(time.perf_counter() - start)
        out[name] = took
    return out


def compare(
    tmp: Path, url: str, namespace: str, urls: tuple[str, str], sizes: tuple[int, int], reps: int, passes: int
) -> dict[str, Any]:
    made: list[Steps] = []
    try:
        for database_url, n in zip(urls, sizes, strict=True):
            where = tmp / f"{namespace}-{n}"
            where.mkdir()
            made.append(Steps(where, url, f"{namespace}-{n}", database_url, n))
        small, big = made
        ops = side_by_side(small, big, reps, passes)
        # The ledger's CSV export walks every page of it: its cost per entry should not grow.
        exports: tuple[list[float], list[float]] = ([], [])
        entries = [0, 0]
        for i in range(passes):
            for which in (0, 1) if i % 2 == 0 else (1, 0):
                start = time.perf_counter()
                entries[which] = made[which].export()
                exports[which].append((time.perf_counter() - start) / entries[which])
        return {"small": small, "big": big, "ops": ops, "export": exports, "entries": entries}
    finally:
        for steps in made:
            steps.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    small, big = (1_000, 10_000) if args.quick else (1_000, 100_000)
    reps, passes = (8, 3) if args.quick else (30, 5)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        urls = (f"sqlite:///{tmp / 'small.db'}", f"sqlite:///{tmp / 'big.db'}")
        runs["SQLite"] = compare(tmp, url, f"{namespace}-sqlite", urls, (small, big), reps, passes)
        if not args.no_postgres:
            with postgres_database() as pg_small, postgres_database() as pg_big:
                if pg_small is not None and pg_big is not None:
                    runs["PostgreSQL"] = compare(
                        tmp, url, f"{namespace}-pg", (pg_small, pg_big), (small, big), reps, passes
                    )
    print(
        f"cost per step of a job's path with {small:,} vs {big:,} jobs in the database "
        f"(median ms; K={reps}, reconciler K={passes}; the two databases alternate step by step)"
    )
    print(
        f"the steps act for one tenant holding a tenth of the jobs ({small // BENCH_SHARE:,} vs "
        f"{big // BENCH_SHARE:,}); the others hold {JOBS_PER_TENANT} each"
    )
    for db, r in runs.items():
        a, b = r["small"], r["big"]
        print(
            f"{db}: filled {a.jobs:,} jobs ({a.rows:,} rows) in {a.fill_seconds:.1f} s, "
            f"{b.jobs:,} jobs ({b.rows:,} rows) in {b.fill_seconds:.1f} s"
        )
        print(f"  {'step':44} {f'{small:,} jobs':>11} {f'{big:,} jobs':>12} {'ratio':>7}")
        for op, (on_small, on_big) in r["ops"].items():
            m_small, m_big = statistics.median(on_small), statistics.median(on_big)
            ratio = m_big / m_small
            flag = "  <- grows" if ratio > 1.5 and m_big - m_small > 1e-3 else ""
            print(f"  {op:44} {m_small * 1000:8.2f} ms {m_big * 1000:9.2f} ms {ratio:6.2f}x{flag}")
        per_small, per_big = (statistics.median(v) for v in r["export"])
        n_small, n_big = r["entries"]
        flag = "  <- grows" if per_big / per_small > 1.5 else ""
        label = f"ledger CSV export per entry ({n_small:,} vs {n_big:,})"
        print(
            f"  {label:44} {per_small * 1e6:8.1f} us {per_big * 1e6:9.1f} us {per_big / per_small:6.2f}x{flag}"
        )


if __name__ == "__main__":
    main()
