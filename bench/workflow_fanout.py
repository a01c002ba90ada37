"""A workflow that maps one job type over many files, beside the same jobs submitted one by
one, through the whole platform.

Both sides run ``image.resize`` of the same N uploaded 64x48 PNGs on a real ``faktry web``
(1 process x 8 threads) and media workers (2 processes x 2 threads), on a fresh database:
- single: N ``POST /v1/jobs`` from 4 client threads;
- fan-out: one ``POST /v1/workflow-runs`` whose node maps over a list run input of the N
  files (one quote held at once, one job per item, each price moved from the run's hold).
Each side is timed from its first request to its last job finished (read from the
database); CPU per job is the user + system time of the web's and the workers' process
groups over the run, divided by N. Afterwards the ledger check is clean on both sides.

    python -m bench.workflow_fanout            # 1,000 files, SQLite (and PostgreSQL if it answers)
    python -m bench.workflow_fanout --quick    # 50 files, SQLite (smoke)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from bench.common import (
    bench_settings,
    bench_tier,
    make_tenant,
    postgres_database,
    redis_url,
    tiny_png,
    upload,
)
from bench.throughput import _wait_counter, finished_jobs
from faktry import migrate
from faktry.db import make_engine, make_sessionmaker, transaction
from quotas import ledger
from tests.platform import Platform

JOB_TYPE = "image.resize"
PARAMS = {"width": 32, "height": 24}


def _graph() -> dict[str, Any]:
    return {
        "inputs": {"images": {"kind": "image", "list": True}},
        "nodes": {
            "small": {
                "type": JOB_TYPE,
                "params": PARAMS,
                "input": {"file_id": {"input": "images"}},
                "map": "file_id",
            }
        },
    }


def _ledger_problems(database_url: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return list(ledger.check(session))
    finally:
        engine.dispose()


def _run_status(database_url: str) -> dict[str, int]:
    from pipelines.workflows.models import WorkflowRun

    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            rows = session.execute(
                select(WorkflowRun.status, func.count()).group_by(WorkflowRun.status)
            ).all()
            return {status: int(n) for status, n in rows}
    finally:
        engine.dispose()


def run_side(
    tmp: Path, url: str, namespace: str, database_url: str, n: int, *, fanout: bool
) -> dict[str, float]:
    migrate.upgrade(database_url)
    settings = bench_settings(
        tmp, redis=url, namespace=namespace, database_url=database_url, web_workers=1, web_threads=8
    )
    _, key = make_tenant(database_url, tier=bench_tier(database_url), credits=n * 10 + 100)
    headers = {"Authorization": f"Bearer {key}"}
    platform = Platform(settings, tmp)
    try:
        web = platform.start_web()
        worker = platform.start_worker(2, 2, kind="media")
        platform.wait_healthy()
        png = tiny_png(tmp / "in.png")
        files = [upload(platform.base, headers, png) for _ in range(n)]
        web0, work0 = web.cpu_seconds(), worker.cpu_seconds()
        start = time.perf_counter()
        if fanout:
            r = requests.post(
                f"{platform.base}/v1/workflow-runs",
                headers=headers,
                json={"graph": _graph(), "inputs": {"images": files}},
                timeout=300,
            )
            if r.status_code != 202:
                raise RuntimeError(f"the run was refused: {r.status_code} {r.text[:500]}")
        else:
            bodies = [{"type": JOB_TYPE, "input": {"file_id": f}, "params": PARAMS} for f in files]
            _submit_each(platform.base, headers, bodies)
        _wait_counter(lambda: finished_jobs(database_url), n, platform.procs, timeout=120 + n)
        elapsed = time.perf_counter() - start
        web1, work1 = web.cpu_seconds(), worker.cpu_seconds()
        if fanout:
            deadline = time.monotonic() + 60
            while _run_status(database_url).get("succeeded") != 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the run did not succeed: {_run_status(database_url)}")
                time.sleep(0.1)
    finally:
        platform.stop()
    problems = _ledger_problems(database_url)
    if problems:
        raise RuntimeError(f"ledger check: {problems}")
    return {"elapsed": elapsed, "web_cpu": (web1 - web0) / n, "worker_cpu": (work1 - work0) / n}


def _submit_each(base: str, headers: dict[str, str], bodies: list[dict[str, Any]]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    session = requests.Session()

    def one(body: dict[str, Any]) -> None:
        r = session.post(f"{base}/v1/jobs", headers=headers, json=body, timeout=120)
        if r.status_code != 202:
            raise RuntimeError(f"submit answered {r.status_code}: {r.text[:300]}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, bodies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 50 if args.quick else 1000
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        databases: list[tuple[str, Any]] = [("SQLite", None)]
        if not args.quick:
            databases.append(("PostgreSQL", "pg"))
        for db_label, kind in databases:
            for side, fanout in (("single", False), ("fan-out", True)):
                folder = tmp / f"{db_label}-{side}"
                folder.mkdir()
                if kind is None:
                    results[f"{db_label} {side}"] = run_side(
                        folder,
                        url,
                        f"{namespace}-{db_label}-{side}",
                        f"sqlite:///{folder / 'faktry.db'}",
                        n,
                        fanout=fanout,
                    )
                else:
                    with postgres_database() as pg_url:
                        if pg_url is None:
                            continue
                        results[f"{db_label} {side}"] = run_side(
                            folder, url, f"{namespace}-{db_label}-{side}", pg_url, n, fanout=fanout
                        )
    print(f"{n} x {JOB_TYPE} of a 64x48 PNG: single submits vs one workflow run mapping over {n} files")
    for label, r in results.items():
        print(
            f"  {label:22} {r['elapsed']:7.2f} s = {n / r['elapsed']:6.1f} jobs/s   CPU per job: "
            f"web {r['web_cpu'] * 1000:5.2f} + workers {r['worker_cpu'] * 1000:5.2f} ms"
        )
    for db_label in ("SQLite", "PostgreSQL"):
        single, fan = results.get(f"{db_label} single"), results.get(f"{db_label} fan-out")
        if single and fan:
            print(
                f"  {db_label}: the fan-out run takes {fan['elapsed'] / single['elapsed']:.2f}x the wall time of "
                f"single submits and {(fan['web_cpu'] + fan['worker_cpu']) / (single['web_cpu'] + single['worker_cpu']):.2f}x "
                "their CPU per job; ledger check clean on both"
            )


if __name__ == "__main__":
    main()
