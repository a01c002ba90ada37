"""Shared bits of the benchmarks: a Redis to run against, percentiles, a result line."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from faktry.redisconn import ensure_embedded


@contextmanager
def redis_url(tmp: Path) -> Iterator[tuple[str, str]]:
    """(url, namespace): this machine's Redis if it answers, else an embedded one."""
    url = os.environ.get("FAKTRY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    namespace = f"faktry-bench-{uuid.uuid4().hex[:8]}"
    embedded = None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError):
        embedded = ensure_embedded(tmp)
        url = embedded.url
    try:
        yield url, namespace
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()
        if embedded is not None:
            embedded.stop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50) * 1000:7.1f} ms  p95 {percentile(values, 95) * 1000:7.1f} ms  "
        f"mean {statistics.fmean(values) * 1000:7.1f} ms  (n={len(values)})"
    )
