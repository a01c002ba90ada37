"""Requests per second and p99 of ``POST /v1/jobs`` under load, beside ``GET /healthz`` on the
same server.

A real ``faktry web`` (gunicorn, faktry's defaults: 2 processes x 8 threads) on a fresh
database, configured only through FAKTRY_* variables. Eight tenants on a bench tier (a submit
rate of 10^9 a minute: the rate limiter's Redis script still runs on every submit, but never
refuses) with credits for every submit, each with a 64x48 PNG uploaded. The load comes from a
separate process (its own process group) with a pool of threads, each with its own
keep-alive ``requests.Session`` and tenant, loopback only, bounded in time and in count. A
submit is a ``media.probe`` of the tenant's PNG: API-key check, rate limit, the job row and
its credit hold, fair admission and the broker (Redis), the dispatch stamp. No workers run:
the jobs stay queued. ``/healthz`` touches neither the database nor Redis, so it is the
server's and the client's own ceiling on this machine. The submits run four times, each on
a fresh server and database, in the order apart, grouped, grouped, apart: written in groups
(group commit, the default) or each in its own transaction (``FAKTRY_SUBMIT_GROUP_MAX=1``);
each mode is reported as the sum of its two runs.

    python -m bench.submit_load            # 20 s per load; SQLite, and PostgreSQL if it answers
    python -m bench.submit_load --quick    # 4 s per load, SQLite (smoke)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    bench_settings,
    bench_tier,
    make_tenant,
    percentile,
    postgres_database,
    redis_url,
    tiny_png,
    upload,
)
from faktry import migrate
from faktry.config import Settings
from tests.platform import Platform, Proc

TENANTS = 8
MAX_REQUESTS = 200_000


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator (runs in its own process): threads x keep-alive sessions."""
    deadline = time.monotonic() + spec["seconds"]
    lock = threading.Lock()
    budget = [spec["max_requests"]]
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def worker(i: int) -> None:
        calls = spec["calls"]
        call = calls[i % len(calls)]
        session = requests.Session()
        mine: list[float] = []
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            start = time.perf_counter()
            try:
                r = session.request(
                    spec["method"], spec["url"], headers=call["headers"], json=call["json"], timeout=60
                )
                status = str(r.status_code)
            except requests.RequestException as exc:
                status = type(exc).__name__
            took = time.perf_counter() - start
            if status.startswith("2"):
                mine.append(took)
            else:
                with lock:
                    errors[status] = errors.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
        session.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(spec["threads"])]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "elapsed": time.perf_counter() - start,
        "latencies": latencies,
        "errors": errors,
        "client_cpu": time.process_time(),
    }


def load(tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    out = tmp / f"load-{time.monotonic_ns()}.json"
    spec_path = out.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    proc = Proc(
        "load",
        [sys.executable, "-m", "bench.submit_load", "--drive", str(spec_path), str(out)],
        dict(os.environ),
        tmp,
    )
    try:
        proc.popen.wait(spec["seconds"] + 120)
    finally:
        proc.stop()
    if proc.popen.returncode != 0 or not out.exists():
        raise RuntimeError(f"the load generator failed:\n{proc.output()}")
    return json.loads(out.read_text())


def run(
    tmp: Path,
    url: str,
    namespace: str,
    database_url: str,
    seconds: float,
    threads: int,
    *,
    group_max: int = Settings.submit_group_max,
    healthz: bool = True,
) -> dict[str, Any]:
    """The loads on one fresh server: ``/healthz`` (unless not ``healthz``), then submits,
    written in groups of at most ``group_max`` (1: each in its own transaction)."""
    migrate.upgrade(database_url)
    settings = bench_settings(
        tmp, redis=url, namespace=namespace, database_url=database_url, web_workers=2, web_threads=8,
        submit_group_max=group_max,
    )  # fmt: skip
    tier = bench_tier(database_url)
    keys = [make_tenant(database_url, tier=tier, credits=100_000)[1] for _ in range(TENANTS)]
    platform = Platform(settings, tmp)
    try:
        web = platform.start_web()
        platform.wait_healthy()
        png = tiny_png(tmp / "in.png")
        calls = []
        for key in keys:
            headers = {"Authorization": f"Bearer {key}"}
            file_id = upload(platform.base, headers, png)
            body = {"type": "media.probe", "input": {"file_id": file_id}}
            calls.append({"headers": headers, "json": body})
            for _ in range(4):  # both web processes learn the key; connections and caches warm
                r = requests.post(f"{platform.base}/v1/jobs", headers=headers, json=body, timeout=60)
                if r.status_code != 202:
                    raise RuntimeError(f"submit answered {r.status_code}: {r.text[:500]}")
        common = {"threads": threads, "seconds": seconds, "max_requests": MAX_REQUESTS}
        cpu0 = web.cpu_seconds()
        health = (
            load(
                tmp,
                {
                    **common,
                    "method": "GET",
                    "url": f"{platform.base}/healthz",
                    "calls": [{"headers": {}, "json": None}],
                },
            )
            if healthz
            else {}
        )
        cpu1 = web.cpu_seconds()
        submits = load(tmp, {**common, "method": "POST", "url": f"{platform.base}/v1/jobs", "calls": calls})
        cpu2 = web.cpu_seconds()
        submits["server_cpu"] = cpu2 - cpu1
        if health:
            health["server_cpu"] = cpu1 - cpu0
    finally:
        platform.stop()
    return {"healthz": health, "submit": submits}


def compare(
    tmp: Path, url: str, namespace: str, database_url: Callable[[Path], str], seconds: float, threads: int
) -> dict[str, Any]:
    """The submits with group commit (the default) and with each in its own transaction, in
    the order apart, grouped, grouped, apart, each on a fresh server and database of its
    own (``database_url(folder)``), with ``/healthz`` beside the first grouped one. Each mode
    is the sum of its two runs: on a shared machine whose speed drifts, and whose second of
    two runs in a row tends to be the slower, neither mode gets the better moments."""
    runs: dict[str, list[dict[str, Any]]] = {"grouped": [], "apart": []}
    healthz: dict[str, Any] = {}
    for i, mode in enumerate(("apart", "grouped", "grouped", "apart")):
        folder = tmp / f"{mode}{i}"
        folder.mkdir()
        apart = mode == "apart"
        r = run(
            folder, url, f"{namespace}-{i}", database_url(folder), seconds, threads,
            group_max=1 if apart else Settings.submit_group_max, healthz=not apart and not healthz,
        )  # fmt: skip
        healthz = healthz or r["healthz"]
        runs[mode].append(r["submit"])
    return {"healthz": healthz, "submit": _joined(runs["grouped"]), "apart": _joined(runs["apart"])}


def _joined(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """Several loads of one kind as one: their requests over their summed time."""
    errors: dict[str, int] = {}
    for one in loads:
        for k, v in one["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "latencies": [x for one in loads for x in one["latencies"]],
        "elapsed": sum(one["elapsed"] for one in loads),
        "errors": errors,
        "client_cpu": sum(one["client_cpu"] for one in loads),
        "server_cpu": sum(one["server_cpu"] for one in loads),
    }


def _summary(r: dict[str, Any]) -> tuple[float, float, float]:
    lat = r["latencies"]
    return len(lat) / r["elapsed"], percentile(lat, 50), percentile(lat, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=16, help="load generator threads")
    parser.add_argument("--drive", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        spec_path, out = args.drive
        Path(out).write_text(json.dumps(drive(json.loads(Path(spec_path).read_text()))))
        return
    seconds = 4.0 if args.quick else 20.0
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        (tmp / "sqlite").mkdir()
        results["SQLite"] = compare(
            tmp / "sqlite", url, f"{namespace}-sqlite", lambda d: f"sqlite:///{d / 'faktry.db'}",
            seconds, args.threads,
        )  # fmt: skip
        if not args.quick:
            with contextlib.ExitStack() as stack:
                databases = [stack.enter_context(postgres_database()) for _ in range(4)]
                if all(databases):
                    (tmp / "pg").mkdir()
                    by_folder: dict[Path, str] = {}

                    def pg_url(folder: Path) -> str:
                        return by_folder.setdefault(folder, str(databases[len(by_folder)]))

                    results["PostgreSQL"] = compare(
                        tmp / "pg", url, f"{namespace}-pg", pg_url, seconds, args.threads
                    )
    print(
        f"POST /v1/jobs vs GET /healthz on one `faktry web` (2 processes x 8 threads), "
        f"{args.threads} client threads for {seconds:g} s each"
    )
    for db, r in results.items():
        h_rps, h50, h99 = _summary(r["healthz"])
        s_rps, s50, s99 = _summary(r["submit"])
        print(f"  {db}")
        for label, (rps, p50, p99), raw in (
            ("GET /healthz ", (h_rps, h50, h99), r["healthz"]),
            ("POST /v1/jobs", (s_rps, s50, s99), r["submit"]),
        ):
            errors = ", ".join(f"{k}: {v}" for k, v in raw["errors"].items()) or "none"
            print(
                f"    {label}  {rps:7.1f} req/s   p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
                f"({len(raw['latencies'])} ok, errors: {errors}; web CPU "
                f"{raw['server_cpu'] * 1000 / max(1, len(raw['latencies'])):.1f} ms/req, client {raw['client_cpu']:.1f} s)"
            )
        a_rps, a50, a99 = _summary(r["apart"])
        print(
            f"    POST /v1/jobs, each submit in its own transaction (FAKTRY_SUBMIT_GROUP_MAX=1)  "
            f"{a_rps:7.1f} req/s   p50 {a50 * 1000:7.1f} ms   p99 {a99 * 1000:7.1f} ms   (web CPU "
            f"{r['apart']['server_cpu'] * 1000 / max(1, len(r['apart']['latencies'])):.1f} ms/req)"
        )
        print(
            f"    ratio healthz/submit: {h_rps / s_rps:.1f}x the requests per second, p99 {s99 / h99:.1f}x longer"
        )
        print(f"    ratio grouped/apart: {s_rps / a_rps:.2f}x the submits per second")


if __name__ == "__main__":
    main()
