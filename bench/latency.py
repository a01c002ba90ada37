"""Latency of single small jobs on an idle system, beside bare Dramatiq on the same Redis.

One job at a time, with an idle pause before each (the workers' consumers back off to their
idle poll, as on a quiet system): an ``image.resize`` of a 64x48 PNG submitted with an API
key to a real ``faktry web`` (gunicorn) and run by one ``faktry worker --kind media``
process (1 thread). The job's own events (``GET /v1/jobs/{id}/events``: started, succeeded)
give the server-side times, measured from the moment this process sent the POST (same
machine, same clock). The bare side: one ``python -m dramatiq`` process (1 thread) on the
same broker settings and queues, an actor that notes when it started; enqueue to start.

While a job runs, this process only watches the platform's Redis counters (no polling of
the API or the database, which would compete with the worker for SQLite's write lock).

    python -m bench.latency            # 150 jobs each
    python -m bench.latency --quick    # 8 jobs each (smoke)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import redis
import requests
from dramatiq import Message

from bench.common import (
    bare_workers,
    bench_settings,
    jobs_finished,
    percentile,
    redis_url,
    sqlite_platform,
    stamp,
    tiny_png,
    upload,
)
from workers.broker import make_broker

JOB_TYPE = "image.resize"
QUEUES = ("local.small", "local.large")


def run_faktry(tmp: Path, url: str, namespace: str, samples: int, idle: float) -> dict[str, list[float]]:
    platform, headers = sqlite_platform(tmp, url, namespace, credits=samples + 100)
    client = redis.Redis.from_url(url)
    http = requests.Session()
    out: dict[str, list[float]] = {"post": [], "running": [], "succeeded": [], "created_to_started": []}
    try:
        platform.start_web()
        platform.start_worker(1, 1, kind="media")
        platform.wait_healthy()
        file_id = upload(platform.base, headers, tiny_png(tmp / "in.png"))
        body = {"type": JOB_TYPE, "input": {"file_id": file_id}, "params": {"width": 32, "height": 24}}
        warm = 3
        for i in range(warm + samples):
            time.sleep(idle)
            done_before = sum(jobs_finished(client, namespace, JOB_TYPE).values())
            sent = time.time()
            r = http.post(f"{platform.base}/v1/jobs", headers=headers, json=body, timeout=60)
            answered = time.time()
            if r.status_code != 202:
                raise RuntimeError(f"submit answered {r.status_code}: {r.text[:500]}")
            job_id = r.json()["id"]
            deadline = time.monotonic() + 60
            while sum(jobs_finished(client, namespace, JOB_TYPE).values()) <= done_before:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} did not finish:\n{platform.logs()}")
                time.sleep(0.005)
            events = http.get(f"{platform.base}/v1/jobs/{job_id}/events", headers=headers, timeout=60).json()
            at = {e["kind"]: stamp(e["at"]) for e in events["data"]}
            if "succeeded" not in at:
                raise RuntimeError(f"job {job_id} did not succeed: {events}")
            if i < warm:
                continue
            out["post"].append(answered - sent)
            out["running"].append(at["started"] - sent)
            out["succeeded"].append(at["succeeded"] - sent)
            out["created_to_started"].append(at["started"] - at["created"])
    finally:
        platform.stop()
        client.close()
        http.close()
    return out


def run_bare(tmp: Path, url: str, namespace: str, samples: int, idle: float) -> list[float]:
    settings = bench_settings(
        tmp, redis=url, namespace=namespace, database_url=f"sqlite:///{tmp / 'bare.db'}"
    )
    proc = bare_workers(settings, tmp, 1, 1, QUEUES)
    broker = make_broker(settings, url)
    client = redis.Redis.from_url(url)
    stamps = f"{namespace}:bench:stamps"
    latencies = []
    try:
        warm = 3
        for i in range(warm + samples):
            time.sleep(idle)
            sent = time.time()
            broker.enqueue(
                Message(queue_name="local.small", actor_name="stamp", args=(i,), kwargs={}, options={})
            )
            got = client.blpop([stamps], timeout=60 if i >= warm else 120)
            if got is None:
                raise TimeoutError(f"the bare worker did not run message {i}:\n{proc.output()}")
            index, started = got[1].decode().split()
            assert int(index) == i
            if i >= warm:
                latencies.append(float(started) - sent)
    finally:
        proc.stop()
        broker.close()
        client.close()
    return latencies


def _line(label: str, values: list[float]) -> str:
    return (
        f"  {label:46} p50 {percentile(values, 50) * 1000:7.1f} ms   "
        f"p99 {percentile(values, 99) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    samples, idle = (8, 0.3) if args.quick else (150, 0.5)
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        faktry = run_faktry(tmp, url, f"{namespace}-faktry", samples, idle)
        bare = run_bare(tmp, url, f"{namespace}-bare", samples, idle)
    print(f"single small jobs on an idle system, {samples} each, {idle:g} s idle before each, SQLite")
    print(_line("faktry  POST /v1/jobs answered", faktry["post"]))
    print(_line("faktry  submit -> running (started event)", faktry["running"]))
    print(_line("faktry  submit -> succeeded (succeeded event)", faktry["succeeded"]))
    print(_line("faktry  created -> started (both server-side)", faktry["created_to_started"]))
    print(_line("bare    enqueue -> actor starts", bare))
    p50 = percentile(faktry["running"], 50) / percentile(bare, 50)
    p99 = percentile(faktry["running"], 99) / percentile(bare, 99)
    print(f"  ratio faktry/bare, submit -> running: p50 {p50:.1f}x, p99 {p99:.1f}x")
    done = percentile(faktry["succeeded"], 50) / percentile(bare, 50)
    print(f"  ratio faktry submit -> succeeded / bare enqueue -> start: p50 {done:.1f}x")


if __name__ == "__main__":
    main()
