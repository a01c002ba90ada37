"""Webhook delivery latency: from the commit of an event to the receiver holding it.

A real faktry worker process delivers (`workers.actors.webhooks`), a receiver on loopback
stamps each arrival, and this process writes one event at a time through the outbox, the
way `pipelines.lifecycle.event` does. Two paths are measured:

- the fast path: the message is sent to the worker as the transaction commits;
- the sweep alone: no send at commit (as after a crash between commit and send), so the
  scheduler's sweep of due messages finds it (``FAKTRY_SWEEP_INTERVAL_SECONDS`` set to 1 s
  here; 15 s by default).

    python -m bench.webhook_latency            # full: 200 events on the fast path, 30 swept
    python -m bench.webhook_latency --quick    # smoke: 20 and 4
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import bench_settings, bench_tier, make_tenant, percentile, postgres_database, redis_url
from faktry import migrate
from faktry.db import make_engine, make_sessionmaker, transaction
from pipelines.webhooks import endpoints, outbox
from tests.platform import Platform
from workers.actors.webhooks import kicker
from workers.broker import make_broker


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()

    def wait(self, message_id: str, timeout: float = 60.0) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: message_id in self.at, timeout):
                raise TimeoutError(f"{message_id} never arrived")
            return self.at[message_id]


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            now = time.time()
            self.send_response(204)
            self.end_headers()
            with arrivals.changed:
                arrivals.at.setdefault(self.headers["webhook-id"], now)
                arrivals.changed.notify_all()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(count: int, swept: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        with postgres_database() as pg_url:
            database_url = pg_url or f"sqlite:///{tmp / 'faktry.db'}"
            migrate.upgrade(database_url)
            settings = bench_settings(
                tmp, redis=url, namespace=namespace, database_url=database_url,
                webhook_allow_loopback=True, sweep_interval_seconds=1.0,
            )  # fmt: skip
            tenant_id, _ = make_tenant(database_url, tier=bench_tier(database_url), credits=1)
            arrivals = Arrivals()
            server = receiver(arrivals)
            engine = make_engine(database_url)
            sessions = make_sessionmaker(engine)
            with transaction(sessions) as session:
                hook_url = f"http://127.0.0.1:{server.server_address[1]}/in"
                endpoints.create(session, tenant_id, {"url": hook_url}, allow_loopback=True)
            committed: dict[str, float] = {}
            send = kicker(make_broker(settings, url))
            fast = True

            def kick(ids: Sequence[str]) -> None:
                committed[ids[0]] = time.time()
                if fast:
                    send(ids)

            outbox.install(sessions, kick)
            platform = Platform(settings, tmp)
            try:
                platform.start_worker(processes=1, threads=2)
                platform.start("scheduler", "scheduler")
                warm = event(sessions, tenant_id)
                arrivals.wait(warm, timeout=120)
                fast_path = [measure(sessions, tenant_id, arrivals, committed) for _ in range(count)]
                fast = False
                sweep_only = [measure(sessions, tenant_id, arrivals, committed) for _ in range(swept)]
            finally:
                platform.stop()
                server.shutdown()
                engine.dispose()
    print(f"database: {'PostgreSQL' if pg_url else 'SQLite'}; one worker process, 2 threads")
    print(f"fast path   (sent at commit)   {line(fast_path)}")
    print(f"sweep alone (1 s sweep)        {line(sweep_only)}")
    print(f"ratio sweep/fast (p50): {percentile(sweep_only, 50) / percentile(fast_path, 50):.1f}")


def event(sessions: Any, tenant_id: str) -> str:
    with transaction(sessions) as session:
        [message_id] = outbox.record(session, tenant_id, outbox.TEST, {"bench": True})
    return message_id


def measure(sessions: Any, tenant_id: str, arrivals: Arrivals, committed: dict[str, float]) -> float:
    message_id = event(sessions, tenant_id)
    return arrivals.wait(message_id) - committed[message_id]


def line(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50) * 1000:7.1f} ms  p99 {percentile(values, 99) * 1000:7.1f} ms  "
        f"max {max(values) * 1000:7.1f} ms  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few events")
    args = parser.parse_args()
    run(20, 4) if args.quick else run(200, 30)


if __name__ == "__main__":
    main()
