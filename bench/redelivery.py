"""How long until a job held by a worker killed with SIGKILL runs again.

Dramatiq's Redis broker hands a dead worker's unacknowledged messages back during
"maintenance", which runs on ``maintenance_chance`` in a million broker calls, once the
worker's heartbeat is older than ``heartbeat_timeout``. faktry's settings (20 s heartbeat,
5 % maintenance, 50 ms polling) aim at redelivery within 30 s; Dramatiq's defaults (60 s,
0.1 %, 1 s polling) are run beside them, capped, for comparison.

    python -m bench.redelivery            # faktry's production settings vs Dramatiq's defaults
    python -m bench.redelivery --quick    # the same, with heartbeats scaled down 10x (smoke)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from dramatiq import Message

from bench.common import redis_url
from faktry.config import Settings
from workers.broker import make_broker

ROOT = Path(__file__).resolve().parents[1]


def _worker(
    url: str, namespace: str, heartbeat_ms: int, chance: int, poll_ms: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAKTRY_REDIS_URL": url,
        "FAKTRY_REDIS_NAMESPACE": namespace,
        "FAKTRY_BROKER_HEARTBEAT_MS": str(heartbeat_ms),
        "FAKTRY_BROKER_MAINTENANCE_CHANCE": str(chance),
        "FAKTRY_JOB_LEASE_SECONDS": "0.5",
        "FAKTRY_JOB_HEARTBEAT_SECONDS": "0.1",
        "dramatiq_worker_timeout": str(poll_ms),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "bench._hold_actor", "--processes", "1", "--threads", "1"],
        env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def measure(url: str, heartbeat_ms: int, chance: int, poll_ms: int, cap: float) -> float | None:
    namespace = f"faktry-bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    first = _worker(url, namespace, heartbeat_ms, chance, poll_ms)
    second = None
    try:
        broker = make_broker(
            Settings(redis_url=url, redis_namespace=namespace, broker_heartbeat_ms=heartbeat_ms,
                     job_lease_seconds=0.5, job_heartbeat_seconds=0.1),
            url,
        )  # fmt: skip
        broker.enqueue(
            Message(queue_name="local.small", actor_name="hold", args=("t",), kwargs={}, options={})
        )
        starts = f"{namespace}:starts:t"
        deadline = time.monotonic() + 60
        while client.llen(starts) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the first worker never started the job")
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
        second = _worker(url, namespace, heartbeat_ms, chance, poll_ms)
        while client.llen(starts) < 2:
            if time.monotonic() - killed > cap:
                return None
            time.sleep(0.05)
        return time.monotonic() - killed
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    with tempfile.TemporaryDirectory() as tmp, redis_url(Path(tmp)) as (url, _):
        ours = measure(url, 20_000 // scale, 50_000, 50, cap=120 / scale)
        cap = 300 if not args.quick else 15
        theirs = measure(url, 60_000 // scale, 1_000, 1000, cap=cap)
    label = " (heartbeats scaled down 10x)" if args.quick else ""
    print(f"redelivery after SIGKILL{label}")
    print(f"  faktry   heartbeat {20 / scale:g}s, 5% maintenance, 50 ms polling:  {_fmt(ours)}")
    print(f"  default  heartbeat {60 / scale:g}s, 0.1% maintenance, 1 s polling: {_fmt(theirs, cap)}")
    if ours is not None:
        target = 30 / scale
        print(f"  faktry / target ({target:g}s): {ours / target:.2f}")
        if theirs is not None:
            print(f"  default / faktry: {theirs / ours:.1f}x")
        else:
            print(f"  default / faktry: > {cap / ours:.1f}x (default did not redeliver within its cap)")


def _fmt(value: float | None, cap: float | None = None) -> str:
    return f"{value:6.1f} s" if value is not None else f"not within {cap:g} s"


if __name__ == "__main__":
    main()
