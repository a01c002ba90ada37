"""The public prompt gallery with 100 versus 10,000 published entries: each read costs the same.

The gallery is public and its first page is the most requested page of the site; its
listing and each filter must be an index range (newest first, keyset pages), never a scan
of every entry. A fresh database (an SQLite file, and a fresh PostgreSQL database when one
answers) is filled with N entries through SQLAlchemy Core, from 50 tenants, spread over the
last year, over the categories, three models and the three kinds; a tenth of them removed by
staff (hidden). Then, through the Flask app in this process (no network), each read is timed
K times, the two databases alternating:

- ``GET /v1/gallery`` (first page of 24), and filtered by category, by model, by kind;
- a page from the middle of the gallery (a cursor);
- ``GET /gallery`` (the public HTML grid) and ``GET /gallery/<id>`` (an entry's page).

The figures are medians in ms; the ratio big/small should stay near 1 (target ≤ 1.5).

    python -m bench.gallery_listing            # 100 vs 10,000 entries, K = 40
    python -m bench.gallery_listing --quick    # 100 vs 2,000 entries, K = 10 (smoke)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench.common import bench_settings, postgres_database, redis_url
from faktry import clock, migrate
from faktry.db import make_engine, new_id
from faktry.tenancy import Tenant
from pipelines import pagination
from pipelines.gallery.models import GalleryEntry
from pipelines.gallery.store import CATEGORIES, KINDS

TENANTS = 50
MODELS = ("local-image", "flux-dev", "gpt-image-1")
PAGE = 24


def fill(database_url: str, n: int) -> dict[str, Any]:
    """N entries; returns a published entry's id and a cursor from the middle."""
    engine = make_engine(database_url)
    rng = random.Random(11)
    now = clock.now()
    tenants = [new_id("ten") for _ in range(TENANTS)]
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": new_id("gal"), "tenant_id": tenants[i % TENANTS], "user_id": None, "job_id": new_id("job"),
                "file_id": None, "storage_key": f"gallery/bench/{i}.png", "kind": KINDS[i % len(KINDS)],
                "content_type": "image/png", "size": 1000, "job_type": "image.generate",
                "model": MODELS[i % len(MODELS)], "params": {"seed": i}, "prompt": f"a prompt number {i}",
                "category": CATEGORIES[i % len(CATEGORIES)], "display_name": f"someone {i % 97}",
                "status": "removed" if rng.random() < 0.1 else "published", "removed_reason": None,
                "removed_at": None, "created_at": now - timedelta(seconds=rng.randint(0, 365 * 86400)),
            }
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            insert(Tenant),
            [{"id": t, "name": t, "tier": "free", "status": "active", "created_at": now} for t in tenants],
        )
        for start in range(0, n, 2000):
            conn.execute(insert(GalleryEntry), rows[start : start + 2000])
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE gallery_entries"))
    engine.dispose()
    shown = sorted((r for r in rows if r["status"] == "published"), key=lambda r: (r["created_at"], r["id"]))
    middle = shown[len(shown) // 2]
    return {"entry": shown[-1]["id"], "cursor": pagination.encode(middle["created_at"], middle["id"])}


class Reads:
    def __init__(self, tmp: Path, url: str, namespace: str, database_url: str, n: int) -> None:
        from web import create_app
        from workers.broker import BrokerSender, make_broker

        migrate.upgrade(database_url)
        started = time.perf_counter()
        fx = fill(database_url, n)
        self.fill_seconds = time.perf_counter() - started
        settings = bench_settings(tmp, redis=url, namespace=namespace, database_url=database_url)
        app = create_app(settings, sender=BrokerSender(make_broker(settings, url)))
        client = app.test_client()

        def get(path: str) -> Callable[[], None]:
            def op() -> None:
                r = client.get(path)
                if r.status_code != 200:
                    raise RuntimeError(
                        f"GET {path} answered {r.status_code}: {r.get_data(as_text=True)[:300]}"
                    )

            return op

        self.ops: dict[str, Callable[[], None]] = {
            "GET /v1/gallery (first page)": get(f"/v1/gallery?limit={PAGE}"),
            "GET /v1/gallery?category=": get(f"/v1/gallery?limit={PAGE}&category={CATEGORIES[1]}"),
            "GET /v1/gallery?model=": get(f"/v1/gallery?limit={PAGE}&model={MODELS[2]}"),
            "GET /v1/gallery?kind=": get(f"/v1/gallery?limit={PAGE}&kind={KINDS[1]}"),
            "GET /v1/gallery (a page from the middle)": get(
                f"/v1/gallery?limit={PAGE}&cursor={fx['cursor']}"
            ),
            "GET /gallery (the public grid)": get("/gallery"),
            "GET /gallery/<id> (an entry's page)": get(f"/gallery/{fx['entry']}"),
        }
        for op in self.ops.values():  # warm: compiled statements, templates
            op()


def compare(
    tmp: Path, url: str, namespace: str, urls: tuple[str, str], sizes: tuple[int, int], reps: int
) -> Any:
    small = Reads(tmp / "small", url, f"{namespace}-s", urls[0], sizes[0])
    big = Reads(tmp / "big", url, f"{namespace}-b", urls[1], sizes[1])
    timings: dict[str, tuple[list[float], list[float]]] = {op: ([], []) for op in small.ops}
    for _ in range(reps):
        for op in small.ops:
            for side, reads in enumerate((small, big)):
                started = time.perf_counter()
                reads.ops[op]()
                timings[op][side].append(time.perf_counter() - started)
    return small, big, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    sizes = (100, 2_000) if args.quick else (100, 10_000)
    reps = 10 if args.quick else 40
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        urls = (f"sqlite:///{tmp / 'small.db'}", f"sqlite:///{tmp / 'big.db'}")
        runs["SQLite"] = compare(tmp / "sqlite", url, f"{namespace}-sqlite", urls, sizes, reps)
        if not args.no_postgres:
            with postgres_database() as pg_small, postgres_database() as pg_big:
                if pg_small is not None and pg_big is not None:
                    runs["PostgreSQL"] = compare(
                        tmp / "pg", url, f"{namespace}-pg", (pg_small, pg_big), sizes, reps
                    )
    small_n, big_n = sizes
    print(f"public gallery reads with {small_n:,} vs {big_n:,} entries (median ms, K={reps}, alternating)")
    worst = 0.0
    for db, (small, big, timings) in runs.items():
        print(
            f"{db}: filled {small_n:,} in {small.fill_seconds:.1f} s, {big_n:,} in {big.fill_seconds:.1f} s"
        )
        print(f"  {'read':44} {f'{small_n:,}':>10} {f'{big_n:,}':>11} {'ratio':>7}")
        for op, (on_small, on_big) in timings.items():
            m_small, m_big = statistics.median(on_small), statistics.median(on_big)
            ratio = m_big / m_small
            worst = max(worst, ratio)
            flag = "  <- grows" if ratio > 1.5 else ""
            print(f"  {op:44} {m_small * 1000:7.2f} ms {m_big * 1000:8.2f} ms {ratio:6.2f}x{flag}")
    print(f"worst ratio {big_n:,}/{small_n:,}: {worst:.2f}x (target 1.5x)")


if __name__ == "__main__":
    main()
