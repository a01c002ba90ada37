"""Shared bits of the benchmarks: a Redis to run against, percentiles, a result line; faktry's
processes, tenants and databases for the platform benchmarks."""

from __future__ import annotations

import os
import socket
import statistics
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from faktry.redisconn import ensure_embedded

# The process helpers the tests use too: faktry's processes, each in its own process group.
from tests.platform import Platform, Proc


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


# -- what the platform benchmarks share -------------------------------------------------------
# Real faktry processes (web, workers) and bare Dramatiq workers, each in its own process
# group so that stopping it stops everything it started; tenants on a bench tier whose
# limits never get in the way; a PostgreSQL database made and dropped per run.

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("FAKTRY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A new, empty PostgreSQL database (dropped afterwards), or None when none answers."""
    from sqlalchemy import create_engine, text

    name = f"faktry_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        admin.dispose()
        yield None
        return
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_settings(tmp: Path, *, redis: str, namespace: str, database_url: str, **overrides: Any) -> Any:
    """faktry's defaults, on this run's database, Redis namespace and storage folder."""
    from faktry.config import Settings

    values: dict[str, Any] = {
        "var_dir": tmp / "var",
        "database_url": database_url,
        "redis_url": redis,
        "redis_namespace": namespace,
        "storage_url": f"file:{(tmp / 'storage').resolve()}",
        "secret_key": uuid.uuid4().hex,
        "bcrypt_rounds": 4,
        "port": free_port(),
        # A request budget no benchmark reaches; each call still pays for counting it.
        "api_requests_per_minute": 10**9,
    }
    values.update(overrides)
    return Settings(**values)


def bench_tier(database_url: str) -> str:
    """A tier (tiers are data) whose limits a benchmark never reaches. Its submit rate is
    finite, so every submit still pays for the rate limiter's Redis script."""
    from faktry.db import make_engine, make_sessionmaker, transaction
    from quotas.models import Tier

    name = f"bench-{uuid.uuid4().hex[:6]}"
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        session.add(
            Tier(
                name=name, storage_quota_bytes=2**50, max_upload_bytes=2**40, max_duration_seconds=10**6,
                max_concurrent_jobs=10_000, submits_per_minute=10**9, scheduling_weight=1,
                workflow_max_nodes=200, workflow_max_items=10_000,
            )
        )  # fmt: skip
    engine.dispose()
    return name


def make_tenant(database_url: str, *, tier: str, credits: int) -> tuple[str, str]:
    """(tenant id, API key) of a new tenant holding ``credits`` credits."""
    from faktry.db import make_engine, make_sessionmaker, transaction
    from faktry.tenancy import create_api_key, create_tenant
    from quotas import ledger
    from quotas.models import MILLI

    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        tenant, user = create_tenant(
            session, email=f"bench-{uuid.uuid4().hex[:10]}@bench.local", tier=tier, bcrypt_rounds=4
        )
        _, plain = create_api_key(session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=4)
        ledger.add_credits(session, tenant.id, credits * MILLI, source="grant", key=f"bench:{tenant.id}")
        tenant_id = tenant.id
    engine.dispose()
    return tenant_id, plain


def sqlite_platform(tmp: Path, url: str, namespace: str, *, credits: int) -> tuple[Platform, dict[str, str]]:
    """faktry on a fresh SQLite file under ``tmp`` (not started yet), and the auth headers
    of a tenant on the bench tier holding ``credits`` credits."""
    from faktry import migrate

    database_url = f"sqlite:///{tmp / 'faktry.db'}"
    migrate.upgrade(database_url)
    settings = bench_settings(tmp, redis=url, namespace=namespace, database_url=database_url, web_workers=1)
    _, key = make_tenant(database_url, tier=bench_tier(database_url), credits=credits)
    return Platform(settings, tmp), {"Authorization": f"Bearer {key}"}


def stamp(value: str) -> float:
    """An API timestamp (ISO 8601) as seconds since the epoch."""
    return datetime.fromisoformat(value).timestamp()


def bare_workers(settings: Any, log_dir: Path, processes: int, threads: int, queues: tuple[str, ...]) -> Proc:
    """Plain Dramatiq worker processes running `bench._bare_actors` on the same broker settings."""
    env = {
        **os.environ,
        **settings.to_env(),
        "dramatiq_worker_timeout": str(settings.worker_timeout_ms),
    }
    cmd = [
        sys.executable, "-m", "dramatiq", "bench._bare_actors", "--processes", str(processes),
        "--threads", str(threads), "--queues", *queues,
    ]  # fmt: skip
    return Proc("bare", cmd, env, log_dir)


def tiny_png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    from PIL import Image

    Image.new("RGB", size, (200, 100, 50)).save(path)
    return path


def upload(base: str, headers: dict[str, str], path: Path) -> str:
    """Upload a file through the API; returns its id."""
    import requests

    with path.open("rb") as fh:
        r = requests.post(f"{base}/v1/files", headers=headers, files={"file": (path.name, fh)}, timeout=120)
    if r.status_code != 201:
        raise RuntimeError(f"upload failed: {r.status_code} {r.text}")
    return str(r.json()["id"])


def jobs_finished(client: redis.Redis, namespace: str, job_type: str) -> dict[str, int]:
    """The platform's own counters (pipelines.metrics): finished jobs of a type, by status."""
    raw = client.hgetall(f"{namespace}:metrics:jobs_total")
    out: dict[str, int] = {}
    for key, value in raw.items():
        name, _, status = (key.decode() if isinstance(key, bytes) else key).partition("|")
        if name == job_type and status != "created":
            out[status] = int(value)
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"
