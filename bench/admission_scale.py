"""What admitting one job costs with 10 and with 10,000 tenants holding backlog, side by side.

Each tenant offers jobs to fair admission (pipelines/admission.py) on one queue, with
a tier cap they are under (so every pick looks at the cap, as it does for real tiers).
Then jobs are admitted one call at a time, as workers finishing jobs do, and the benchmark
prints per admitted job the wall time of the call, Redis's own time for the script (INFO
commandstats) and the Redis commands it ran (the script's calls included, counted on a
private redis-server). Target: the 10,000-tenant figures within ±20 % of the 10-tenant ones.

    python -m bench.admission_scale            # 2,000 admits each
    python -m bench.admission_scale --quick    # 300 admits each
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.pickup_latency import private_redis
from pipelines.admission import Admission

QUEUE = "local.small"


def commandstats(client: Any) -> dict[str, tuple[int, int]]:
    """command -> (calls, microseconds)."""
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in client.info("commandstats").items()
    }


def measure(url: str, namespace: str, tenants: int, admits: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    ns = f"{namespace}-{tenants}"
    admission = Admission(client, ns, depth=10**9, running_namespace=ns)
    try:
        per_tenant = max(3, -(-(admits + 2) // tenants))  # enough that every tenant keeps some
        for i in range(tenants):
            for j in range(per_tenant):
                admission.offer(QUEUE, f"t{i:05d}", f"t{i:05d}-{j}", weight=1 + i % 3, cap=4)
        admission.admit(QUEUE, most=1)  # the script is loaded, the first pick made
        before = commandstats(client)
        start = time.perf_counter()
        got = sum(len(admission.admit(QUEUE, most=1)) for _ in range(admits))
        wall = time.perf_counter() - start
        after = commandstats(client)
        assert got == admits, f"admitted {got} of {admits}"
        calls = {name: after[name][0] - before.get(name, (0, 0))[0] for name in after}
        calls.pop("info", None)
        script_us = after["evalsha"][1] - before.get("evalsha", (0, 0))[1]
        return {
            "wall_us": wall * 1e6 / admits,
            "redis_us": script_us / admits,
            "commands": sum(calls.values()) / admits,
            "round_trips": calls.get("evalsha", 0) / admits,
        }
    finally:
        keys = list(client.scan_iter(match=f"{ns}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    admits = 300 if args.quick else 2000
    with tempfile.TemporaryDirectory() as tmp, private_redis(Path(tmp)) as (url, namespace):
        few = measure(url, namespace, 10, admits)
        many = measure(url, namespace, 10_000, admits)
    print(f"admitting one job while every tenant holds a backlog ({admits} admits each)")
    print("                    wall/admit   Redis time/admit   commands/admit   round trips/admit")
    for label, r in (("10 tenants    ", few), ("10,000 tenants", many)):
        print(
            f"  {label}    {r['wall_us']:7.1f} us      {r['redis_us']:7.1f} us         "
            f"{r['commands']:6.1f}            {r['round_trips']:4.1f}"
        )
    print(
        f"  ratio 10,000/10: {many['wall_us'] / few['wall_us']:.2f}x wall, "
        f"{many['redis_us'] / few['redis_us']:.2f}x Redis time, "
        f"{many['commands'] / few['commands']:.2f}x commands; target: within 0.8x-1.2x"
    )


if __name__ == "__main__":
    main()
