"""How fast an idle worker picks up a new job, and what its polling costs while idle.

Dramatiq's Redis consumer polls an empty queue with a backoff capped at the worker timeout.
faktry sets it to ``FAKTRY_WORKER_TIMEOUT_MS`` (50 ms); Dramatiq's default is 1000 ms. This
runs both side by side on the same Redis, with faktry's broker settings, and prints the
pick-up latency (enqueue to the actor starting) after the worker has been idle, and the
Redis commands and worker CPU per idle second.

    python -m bench.pickup_latency            # full: 40 pick-ups each
    python -m bench.pickup_latency --quick    # smoke: 5 pick-ups each
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import dramatiq
import redis
from dramatiq import Worker

from bench.common import redis_url, summary
from faktry.config import Settings
from workers.broker import make_broker


def measure(url: str, namespace: str, worker_timeout: int, samples: int, idle: float) -> dict[str, object]:
    settings = Settings(redis_namespace=f"{namespace}-{worker_timeout}", redis_url=url)
    broker = make_broker(settings, url)
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
        time.sleep(idle)
        # Idle cost: commands the whole Redis processed, and this process's CPU, per second.
        commands0 = int(client.info("stats")["total_commands_processed"])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(max(idle, 2.0))
        commands1 = int(client.info("stats")["total_commands_processed"])
        cpu1, wall1 = time.process_time(), time.perf_counter()
        latencies = []
        for i in range(samples):
            time.sleep(idle)  # let the consumer back off to its idle poll interval
            sent = time.perf_counter()
            actor.send(i)
            with done:
                done.wait_for(lambda i=i: i in started, timeout=10)
            latencies.append(started[i] - sent)
        return {
            "latencies": latencies,
            "commands_per_s": (commands1 - commands0) / (wall1 - wall0),
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
    samples, idle = (5, 1.2) if args.quick else (40, 1.5)
    with tempfile.TemporaryDirectory() as tmp, redis_url(Path(tmp)) as (url, namespace):
        faktry = measure(url, namespace, 50, samples, idle)
        default = measure(url, namespace, 1000, samples, idle)
    fl, dl = faktry["latencies"], default["latencies"]
    assert isinstance(fl, list) and isinstance(dl, list)
    print("idle pick-up latency (enqueue -> actor starts)")
    print(f"  faktry  worker_timeout=50ms   {summary(fl)}")
    print(f"  default worker_timeout=1000ms {summary(dl)}")
    ratio = sorted(dl)[len(dl) // 2] / sorted(fl)[len(fl) // 2]
    print(f"  ratio default/faktry (p50): {ratio:.1f}x faster pick-up; target: p50 <= 50 ms")
    print("idle cost")
    print(
        f"  faktry  {faktry['commands_per_s']:7.1f} Redis commands/s, {faktry['cpu_ms_per_s']:.1f} ms CPU/s"
    )
    print(
        f"  default {default['commands_per_s']:7.1f} Redis commands/s, {default['cpu_ms_per_s']:.1f} ms CPU/s"
    )
    base = max(float(default["commands_per_s"]), 1e-9)  # type: ignore[arg-type]
    print(f"  ratio faktry/default: {float(faktry['commands_per_s']) / base:.1f}x the Redis commands")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
