"""Small jobs through the whole platform, beside bare Dramatiq no-op actors on the same Redis.

faktry: API-key submits over HTTP to a real ``faktry web`` (gunicorn, 1 process x 8
threads) and media workers (``faktry worker --kind media``) running ``image.resize`` of a
64x48 PNG: rate limit and a credit hold at submit, fair admission, claim, the resize, the
output stored and recorded, the hold captured. Bare: ``python -m dramatiq`` with an actor
that only increments a Redis counter, on the same broker settings, queues, Redis, and the
same worker processes x threads. Each side is timed from its first submit (enqueue) to its
last job finished; the submits come from a pool of client threads in this process while the
workers run. CPU per job is the user + system time of the web's and the workers' process
groups over the timed run, divided by the jobs.

    python -m bench.throughput            # 600 faktry jobs (SQLite, and PostgreSQL if it answers),
                                          # one by one and 100 a request, beside 6,000 bare
    python -m bench.throughput --quick    # 60 faktry jobs on SQLite both ways, 600 bare (smoke)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
import requests
from dramatiq import Message
from sqlalchemy import func, select

from bench.common import (
    bare_workers,
    bench_settings,
    bench_tier,
    make_tenant,
    postgres_database,
    redis_url,
    tiny_png,
    upload,
)
from faktry import migrate
from faktry.db import READ_ONLY, make_engine
from pipelines.models import FINISHED, Job
from tests.platform import Platform, Proc
from workers.broker import make_broker

QUEUES = ("local.small", "local.large")
JOB_TYPE = "image.resize"


def _submit_all(
    base: str, headers: dict[str, str], body: dict[str, Any], n: int, clients: int, batch: int = 0
) -> float:
    """POST n jobs from `clients` threads, each with its own keep-alive session, one by one
    or ``batch`` at a time through ``/v1/jobs/batch``; returns seconds."""
    local = threading.local()
    sizes = [1] * n if not batch else [min(batch, n - i) for i in range(0, n, batch)]

    def one(size: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        if batch:
            r = local.session.post(
                f"{base}/v1/jobs/batch", headers=headers, json={"jobs": [body] * size}, timeout=120
            )
        else:
            r = local.session.post(f"{base}/v1/jobs", headers=headers, json=body, timeout=120)
        if r.status_code != 202:
            raise RuntimeError(f"submit answered {r.status_code}: {r.text[:500]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, sizes))
    return time.perf_counter() - start


def finished_jobs(database_url: str) -> int:
    return sum(count for status, count in jobs_by_status(database_url).items() if status in FINISHED)


_engines: dict[str, Any] = {}


def jobs_by_status(database_url: str) -> dict[str, int]:
    engine = _engines.get(database_url)
    if engine is None:
        engine = _engines[database_url] = make_engine(database_url)
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:  # no write lock taken
        rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: int(count) for status, count in rows}


def _wait_counter(read: Any, target: int, procs: list[Proc], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while read() < target:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.output()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {read()} of {target} finished in {timeout:.0f} s")
        time.sleep(0.02)


def run_faktry(
    tmp: Path,
    url: str,
    namespace: str,
    database_url: str,
    jobs: int,
    processes: int,
    threads: int,
    clients: int,
    batch: int = 0,
) -> dict[str, float]:
    migrate.upgrade(database_url)
    settings = bench_settings(
        tmp, redis=url, namespace=namespace, database_url=database_url, web_workers=1, web_threads=8
    )
    warm = processes * threads * 3
    tenant_tier = bench_tier(database_url)
    _, key = make_tenant(database_url, tier=tenant_tier, credits=jobs + warm + 100)
    headers = {"Authorization": f"Bearer {key}"}
    platform = Platform(settings, tmp)
    client = redis.Redis.from_url(url)
    try:
        web = platform.start_web()
        worker = platform.start_worker(processes, threads, kind="media")
        platform.wait_healthy()
        file_id = upload(platform.base, headers, tiny_png(tmp / "in.png"))
        body = {"type": JOB_TYPE, "input": {"file_id": file_id}, "params": {"width": 32, "height": 24}}

        def finished() -> int:
            # The database, not the metrics: those are written once a second per process.
            return finished_jobs(database_url)

        _submit_all(platform.base, headers, body, warm, clients)
        _wait_counter(finished, warm, platform.procs, timeout=120)
        web0, work0, me0 = web.cpu_seconds(), worker.cpu_seconds(), time.process_time()
        start = time.perf_counter()
        submitting = _submit_all(platform.base, headers, body, jobs, clients, batch)
        _wait_counter(finished, warm + jobs, platform.procs, timeout=60 + jobs)
        elapsed = time.perf_counter() - start
        web1, work1, me1 = web.cpu_seconds(), worker.cpu_seconds(), time.process_time()
        statuses = jobs_by_status(database_url)
    finally:
        platform.stop()
        client.close()
    if statuses.get("succeeded", 0) != warm + jobs:
        raise RuntimeError(f"not every job succeeded: {statuses}")
    return {
        "elapsed": elapsed,
        "submitting": submitting,
        "rate": jobs / elapsed,
        "web_cpu": (web1 - web0) / jobs,
        "worker_cpu": (work1 - work0) / jobs,
        "client_cpu": (me1 - me0) / jobs,
    }


def run_bare(
    tmp: Path, url: str, namespace: str, messages: int, processes: int, threads: int, clients: int
) -> dict[str, float]:
    settings = bench_settings(
        tmp, redis=url, namespace=namespace, database_url=f"sqlite:///{tmp / 'bare.db'}"
    )
    proc = bare_workers(settings, tmp, processes, threads, QUEUES)
    broker = make_broker(settings, url)
    client = redis.Redis.from_url(url)
    done_key = f"{namespace}:bench:done"

    def finished() -> int:
        return int(client.get(done_key) or 0)

    def send(_: int) -> None:
        broker.enqueue(Message(queue_name="local.small", actor_name="noop", args=(), kwargs={}, options={}))

    try:
        warm = processes * threads * 3
        for i in range(warm):
            send(i)
        _wait_counter(finished, warm, [proc], timeout=120)
        cpu0, me0 = proc.cpu_seconds(), time.process_time()
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, range(messages)))
        _wait_counter(finished, warm + messages, [proc], timeout=60 + messages / 10)
        elapsed = time.perf_counter() - start
        cpu1, me1 = proc.cpu_seconds(), time.process_time()
    finally:
        proc.stop()
        broker.close()
        client.close()
    return {
        "elapsed": elapsed,
        "rate": messages / elapsed,
        "worker_cpu": (cpu1 - cpu0) / messages,
        "client_cpu": (me1 - me0) / messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (both sides)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process (both sides)")
    parser.add_argument("--clients", type=int, default=4, help="submitting threads (both sides)")
    parser.add_argument(
        "--batch", type=int, default=100, help="jobs per POST /v1/jobs/batch in the batch runs"
    )
    args = parser.parse_args()
    jobs, messages = (60, 600) if args.quick else (600, 6000)
    p, t, c = args.processes, args.threads, args.clients
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        (tmp / "sqlite").mkdir()
        for label, batch in (("", 0), (" batch", args.batch)):
            folder = tmp / f"sqlite{batch}"
            folder.mkdir()
            results["SQLite" + label] = run_faktry(
                folder,
                url,
                f"{namespace}-sqlite{batch}",
                f"sqlite:///{folder / 'faktry.db'}",
                jobs,
                p,
                t,
                c,
                batch,
            )
        if not args.quick:
            for label, batch in (("", 0), (" batch", args.batch)):
                with postgres_database() as pg_url:
                    if pg_url is not None:
                        folder = tmp / f"pg{batch}"
                        folder.mkdir()
                        results["PostgreSQL" + label] = run_faktry(
                            folder, url, f"{namespace}-pg{batch}", pg_url, jobs, p, t, c, batch
                        )
        bare = run_bare(tmp, url, f"{namespace}-bare", messages, p, t, c)
    print(f"small jobs through the whole platform: {p} worker processes x {t} threads, {c} client threads")
    for db, r in results.items():
        print(
            f"  faktry {db:16} {JOB_TYPE} of a 64x48 PNG via HTTP: {jobs} jobs in {r['elapsed']:6.2f} s = "
            f"{r['rate']:7.1f} jobs/s  (the submits alone took {r['submitting']:.2f} s)"
        )
    print(
        f"  bare Dramatiq no-op actor (one INCR):            {messages} msgs in {bare['elapsed']:6.2f} s = "
        f"{bare['rate']:7.1f} msgs/s"
    )
    for db, r in results.items():
        print(
            f"  ratio bare/faktry ({db}): {bare['rate'] / r['rate']:.1f}x the jobs per second "
            f"(faktry/bare {r['rate'] / bare['rate']:.2f}; target 0.25 single, 0.5 batch)"
        )
    print("CPU per job (user + system, ms)")
    for db, r in results.items():
        total = r["web_cpu"] + r["worker_cpu"]
        print(
            f"  faktry {db:16} web {r['web_cpu'] * 1000:6.1f} + workers {r['worker_cpu'] * 1000:6.1f} = "
            f"{total * 1000:6.1f} ms  (client threads here: {r['client_cpu'] * 1000:.1f} ms)"
        )
    print(
        f"  bare Dramatiq      workers {bare['worker_cpu'] * 1000:6.2f} ms  (client threads here: "
        f"{bare['client_cpu'] * 1000:.2f} ms)"
    )


if __name__ == "__main__":
    main()
