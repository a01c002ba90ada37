"""How many idle event streams one ``faktry web`` process holds, and what they cost it.

One gunicorn worker process (``FAKTRY_WEB_THREADS`` threads, 8 by default) on PostgreSQL
(SQLite when no PostgreSQL answers). Clients open ``GET /v1/events/stream`` for 20 tenants,
in steps, over raw loopback sockets, and stay idle. After each step the benchmark prints:

- the worker process's resident memory, threads and open descriptors (from /proc);
- health checks and an API read answered meanwhile (p50 / p99): open streams hold no thread;
- one event committed per tenant, and how long until every open stream had its tenant's
  (commit → last client got it, p50 / p99 over the streams), and how many got it;

and at the end the ratio of open streams to request threads (a server holding each stream
in a thread of its own would hold as many streams as it has threads).

    python -m bench.sse_clients            # full: 1,000, 4,000, 8,000 and 15,000 streams
    python -m bench.sse_clients --quick    # smoke: 100 and 500 streams
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import insert

from bench.common import (
    bench_settings,
    bench_tier,
    make_tenant,
    percentile,
    postgres_database,
    redis_url,
)
from faktry import migrate
from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines.models import Job, JobEvent
from tests.platform import Platform, children_of

TENANTS = 20
OPEN_THREADS = 16


def _proc_status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "Threads"):
            values[name] = int(value.split()[0])
    values["fds"] = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return values


def _open(port: int, key: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        (
            "GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {key}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"retry:" not in head:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError(f"stream closed before it opened: {head[:200]!r}")
        head += data
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    sock.setblocking(False)
    return sock


def _timed(url: str, headers: dict[str, str], count: int) -> list[float]:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        answer = requests.get(url, headers=headers, timeout=30)
        took.append(time.perf_counter() - started)
        answer.raise_for_status()
    return took


def _deliver(sessions, tenants, clients) -> tuple[list[float], int]:
    """Commit one event per tenant; wait until each client has its tenant's (or 30 s)."""
    selector = selectors.DefaultSelector()
    waiting: dict[socket.socket, str] = {}
    buffers: dict[socket.socket, bytes] = {}
    for sock, tenant_id in clients:
        selector.register(sock, selectors.EVENT_READ)
        waiting[sock] = tenant_id
        buffers[sock] = b""
    jobs = {}
    with transaction(sessions) as session:
        for tenant_id, _ in tenants:
            job = Job(tenant_id=tenant_id, type="image.resize", queue="default")
            session.add(job)
            session.flush()
            jobs[tenant_id] = job.id
    with transaction(sessions) as session:
        for tenant_id, _ in tenants:
            session.execute(
                insert(JobEvent).values(
                    job_id=jobs[tenant_id], tenant_id=tenant_id, kind="created", status="queued", data={}
                )
            )
    committed = time.perf_counter()
    took: list[float] = []
    deadline = committed + 30
    while waiting and time.perf_counter() < deadline:
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                buffers[sock] += sock.recv(65536)
            except BlockingIOError:
                continue
            for block in buffers[sock].split(b"\n\n")[:-1]:
                if block.startswith(b"id:"):
                    data = json.loads(block.split(b"data: ", 1)[1])
                    if data["job_id"] == jobs[waiting.get(sock, "")]:
                        took.append(time.perf_counter() - committed)
                        waiting.pop(sock)
                        selector.unregister(sock)
                        break
            buffers[sock] = buffers[sock].rsplit(b"\n\n", 1)[-1]
    selector.close()
    return took, len(took)


def run(steps: list[int], tmp: Path) -> None:
    with redis_url(tmp) as (redis, namespace), postgres_database() as pg:
        database = pg or f"sqlite:///{tmp / 'faktry.db'}"
        migrate.upgrade(database)
        settings = bench_settings(
            tmp, redis=redis, namespace=namespace, database_url=database, web_workers=1,
            streams_per_process=max(steps) + 100,
        )  # fmt: skip
        tier = bench_tier(database)
        tenants = [make_tenant(database, tier=tier, credits=1) for _ in range(TENANTS)]
        engine = make_engine(database)
        sessions = make_sessionmaker(engine)
        platform = Platform(settings, tmp)
        clients: list[tuple[socket.socket, str]] = []
        try:
            web = platform.start_web()
            platform.wait_healthy()
            [worker] = children_of(web.popen.pid) or [web.popen.pid]
            base = _proc_status(worker)
            print(
                f"faktry web: 1 process, {settings.web_threads} threads, "
                f"{'PostgreSQL' if pg else 'SQLite'}; idle: {base['VmRSS'] / 1024:.1f} MiB, "
                f"{base['Threads']} threads, {base['fds']} descriptors"
            )
            print(
                "| streams | RSS MiB | KiB/stream | threads | fds | /healthz p50/p99 ms | "
                "GET /v1/jobs p50/p99 ms | delivered | commit→client p50/p99 ms |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            headers = {"Authorization": f"Bearer {tenants[0][1]}"}
            with ThreadPoolExecutor(OPEN_THREADS) as pool:
                for target in steps:
                    wanted = [tenants[i % TENANTS] for i in range(len(clients), target)]
                    opened = pool.map(lambda t: (_open(settings.port, t[1]), t[0]), wanted)
                    clients.extend(opened)
                    state = _proc_status(worker)
                    health = _timed(f"{platform.base}/healthz", {}, 50)
                    api = _timed(f"{platform.base}/v1/jobs?limit=5", headers, 50)
                    took, got = _deliver(sessions, tenants, clients)
                    per = (state["VmRSS"] - base["VmRSS"]) / len(clients)
                    print(
                        f"| {len(clients)} | {state['VmRSS'] / 1024:.1f} | {per:.1f} | {state['Threads']} "
                        f"| {state['fds']} | {percentile(health, 50) * 1000:.1f} / "
                        f"{percentile(health, 99) * 1000:.1f} | {percentile(api, 50) * 1000:.1f} / "
                        f"{percentile(api, 99) * 1000:.1f} | {got}/{len(clients)} | "
                        f"{percentile(took, 50) * 1000:.0f} / {percentile(took, 99) * 1000:.0f} |",
                        flush=True,
                    )
            print(
                f"ratio streams/threads: {len(clients):,} open streams on {settings.web_threads} request "
                f"threads = {len(clients) / settings.web_threads:,.0f} times what a thread per stream holds"
            )
        finally:
            for sock, _ in clients:
                sock.close()
            platform.stop()
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 and 500 streams")
    args = parser.parse_args()
    steps = [100, 500] if args.quick else [1000, 4000, 8000, 15000]
    with tempfile.TemporaryDirectory(prefix=f"faktry-sse-{uuid.uuid4().hex[:6]}-") as tmp:
        run(steps, Path(tmp))


if __name__ == "__main__":
    main()
