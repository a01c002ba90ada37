"""What checking 1,000 busy API keys costs a real ``faktry web``: the Redis-shared key cache
beside the same server with it turned off (``FAKTRY_API_KEY_VERIFIED_SECONDS=0``: each
process checks each key with bcrypt again every ``api_key_cache_seconds``, as before).

One ``faktry web`` (faktry's defaults: 2 gunicorn processes x 8 threads) on a fresh SQLite
file, 1,000 tenants with one API key each. A separate load process (its own process group,
keep-alive connections) sends ``GET /v1/session`` — an authenticated request that does
nothing but check its key — for every key, each key on its own steady schedule. The load
process first sends every key once, untimed, so each key's first bcrypt is not measured;
the web process group's CPU is then read from /proc over a window of the schedule. Four
runs at the same request rate, the last on a fresh server so that it inherits nothing:

- ``GET /healthz`` (no key, no database): the server's floor;
- one key for every request, the cache on: the cost of a key check that is always remembered;
- 1,000 keys, the cache on;
- 1,000 keys, the cache off.

"Key checks" is what 1,000 distinct keys cost beyond the same requests made with one key
(bcrypt, Redis lookups, the in-process cache), as a share of one core; the target is 5 %.
The per-request part every authenticated request pays (the key row read that makes
revocation immediate, the request's database transaction) is shown beside it, above
``/healthz``.

This machine's two cores cannot serve 1,000 requests a second beside the load generator,
so each key sends one request every 5 s (200 requests/s in all). What bcrypt costs depends
on how many keys are checked every ``api_key_cache_seconds``, not on how often each is
used, so the key-check share stands for keys sending one request a second too; the
per-request part is shown scaled to 1,000 requests/s. The keys are hashed with bcrypt cost
6 (4 ms a check; with the default cost 12, a check takes 64 times longer, and the cache-off
server could not keep up at all): the cache-off figure is also shown scaled to cost 12.

    python -m bench.key_checks            # 1,000 keys, 25 s windows (under 3 minutes)
    python -m bench.key_checks --quick    # 200 keys every 2 s, 4 s windows (smoke, under a minute)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from bench.common import bench_settings, free_port, redis_url
from faktry import migrate
from tests.platform import Platform, Proc

#: bcrypt cost of the benchmark's keys, and faktry's default (what production keys use).
BENCH_ROUNDS = 6
DEFAULT_ROUNDS = 12
#: Seconds between two requests of one key.
PERIOD = 5.0
THREADS = 40


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator (runs in its own process). Each thread owns the slots ``t, t +
    threads, ...`` and one keep-alive connection. First every thread sends each of its slots
    once, as fast as it can (each key's first check, not timed); then, from a common
    ``start`` written to ``ready``, slot ``i`` sends at ``start + i * period / slots`` and
    every ``period`` after, for ``warm + window`` seconds."""
    slots, period, threads = spec["slots"], spec["period"], spec["threads"]
    keys, url = spec["keys"], spec["url"]
    lock = threading.Lock()
    sent: list[float] = []
    errors: dict[str, int] = {}
    late = [0]
    schedule: dict[str, float] = {}

    def begin() -> None:  # runs once, when every thread has done its first pass
        schedule["start"] = time.time() + 0.5
        schedule["end"] = schedule["start"] + spec["warm"] + spec["window"] + 0.2
        Path(spec["ready"]).write_text(str(schedule["start"]))

    first_pass_done = threading.Barrier(threads, action=begin)

    def get(session: requests.Session, slot: int) -> str:
        headers = {"Authorization": f"Bearer {keys[slot % len(keys)]}"} if keys else {}
        try:
            return str(session.get(url, headers=headers, timeout=30).status_code)
        except requests.RequestException as exc:
            return type(exc).__name__

    def worker(t: int) -> None:
        mine = list(range(t, slots, threads))
        session = requests.Session()
        for slot in mine:
            get(session, slot)
        first_pass_done.wait()
        start, end = schedule["start"], schedule["end"]
        ok: list[float] = []
        n = 0
        while True:
            slot = mine[n % len(mine)]
            due = start + slot * period / slots + (n // len(mine)) * period
            if due >= end:
                break
            n += 1
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            elif wait < -1.0:
                with lock:
                    late[0] += 1
            status = get(session, slot)
            if status == "200":
                ok.append(due)
            else:
                with lock:
                    errors[status] = errors.get(status, 0) + 1
        session.close()
        with lock:
            sent.extend(ok)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {"sent": sent, "errors": errors, "late": late[0], "client_cpu": time.process_time()}


def make_keys(database_url: str, count: int) -> list[str]:
    """``count`` tenants with one API key each (bcrypt cost `BENCH_ROUNDS`)."""
    from faktry.db import make_engine, make_sessionmaker, transaction
    from faktry.tenancy import create_api_key, create_tenant

    engine = make_engine(database_url)
    keys = []
    with transaction(make_sessionmaker(engine)) as session:
        for _ in range(count):
            tenant, user = create_tenant(session, email=f"keys-{uuid.uuid4().hex[:12]}@bench.local")
            _, plain = create_api_key(
                session, tenant_id=tenant.id, user_id=user.id, bcrypt_rounds=BENCH_ROUNDS
            )
            keys.append(plain)
    engine.dispose()
    return keys


def serve(
    tmp: Path,
    settings: Any,
    phases: list[tuple[str, list[str]]],
    slots: int,
    period: float,
    warm: float,
    window: float,
) -> list[dict[str, Any]]:
    """One fresh server; for each phase (path, keys), the schedule, and the web group's CPU
    over ``window`` seconds that begin ``warm`` seconds after the phase's first request."""
    platform = Platform(settings.replace(port=free_port()), tmp)
    results = []
    try:
        web = platform.start_web()
        platform.wait_healthy()
        for path, keys in phases:
            results.append(_phase(tmp, web, platform.base + path, keys, slots, period, warm, window))
    finally:
        platform.stop()
    return results


def _phase(
    tmp: Path, web: Proc, url: str, keys: list[str], slots: int, period: float, warm: float, window: float
) -> dict[str, Any]:
    out = tmp / f"drive-{uuid.uuid4().hex[:6]}.json"
    ready = out.with_suffix(".ready")
    spec = {
        "url": url, "keys": keys, "slots": slots, "period": period, "threads": THREADS,
        "warm": warm, "window": window, "ready": str(ready),
    }  # fmt: skip
    spec_path = out.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "bench.key_checks", "--drive", str(spec_path), str(out)]
    load = Proc("load", cmd, dict(os.environ), tmp)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() or not ready.read_text():
            if load.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the load generator's first pass failed:\n{load.output()}")
            time.sleep(0.05)
        start = float(ready.read_text())
        time.sleep(max(0.0, start + warm - time.time()))
        t0, cpu0 = time.time(), web.cpu_seconds()
        time.sleep(window)
        t1, cpu1 = time.time(), web.cpu_seconds()
        load.popen.wait(warm + window + 120)
    finally:
        load.stop()
    if load.popen.returncode != 0 or not out.exists():
        raise RuntimeError(f"the load generator failed:\n{load.output()}")
    result = json.loads(out.read_text())
    done = sum(1 for s in result["sent"] if t0 <= s < t1)
    seconds = t1 - t0
    return {
        "cpu": cpu1 - cpu0, "seconds": seconds, "requests": done, "rate": done / seconds,
        "errors": result["errors"], "late": result["late"],
    }  # fmt: skip


def remembered_check_seconds(database_url: str, key: str, n: int = 2000) -> tuple[float, float]:
    """CPU of one check of a key this process remembers (`authenticate_key` in a session of
    its own: the HMAC, the key row read, its transaction), and what writing its last-use
    stamp adds (once a minute per key), measured here, in-process."""
    from faktry import clock
    from faktry.db import make_engine, make_sessionmaker
    from faktry.tenancy import KeyCache, KeyChecker, authenticate_key

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    checker = KeyChecker("bench-secret", KeyCache(10**9))

    def once(check: bool, stamp: bool) -> None:
        if stamp:
            clock.advance(timedelta(seconds=61))
        session = sessions()
        if check:
            authenticate_key(session, key, checker)
        session.commit()
        session.close()

    once(True, False)
    spent = {}
    for check, stamp, runs in ((False, False, n), (True, False, n), (True, True, n // 4)):
        begin = time.process_time()
        for _ in range(runs):
            once(check, stamp)
        spent[check, stamp] = (time.process_time() - begin) / runs
    engine.dispose()
    clock.reset()
    return spent[True, False] - spent[False, False], spent[True, True] - spent[True, False]


def bcrypt_check_seconds(rounds: int) -> float:
    import bcrypt

    hashed = bcrypt.hashpw(b"x" * 48, bcrypt.gensalt(rounds))
    begin = time.process_time()
    bcrypt.checkpw(b"x" * 48, hashed)
    return time.process_time() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--drive", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        spec_path, out = args.drive
        Path(out).write_text(json.dumps(drive(json.loads(Path(spec_path).read_text()))))
        return
    # The quick mode's servers remember keys in-process for 2 s instead of 10 s, so that its
    # short window still sees the cache-off server check every key with bcrypt again.
    count, period, window, remember = (200, 2.0, 4.0, 2.0) if args.quick else (1000, PERIOD, 25.0, 10.0)
    warm = 2.0  # after the first pass (every key seen once), before the window opens
    with tempfile.TemporaryDirectory() as tmp_name, redis_url(Path(tmp_name)) as (url, namespace):
        tmp = Path(tmp_name)
        database_url = f"sqlite:///{tmp / 'faktry.db'}"
        migrate.upgrade(database_url)
        keys = make_keys(database_url, count)
        on = bench_settings(
            tmp, redis=url, namespace=namespace, database_url=database_url, api_key_cache_seconds=remember
        )
        off = on.replace(api_key_verified_seconds=0, redis_namespace=f"{namespace}-off")
        # One server for the floor, one key, then all keys (the one key is 1 in `count`
        # of what the last phase finds remembered); a fresh one with the cache off.
        floor, one, new = serve(
            tmp, on, [("/healthz", []), ("/v1/session", keys[:1]), ("/v1/session", keys)],
            count, period, warm, window,
        )  # fmt: skip
        [old] = serve(tmp, off, [("/v1/session", keys)], count, period, warm, window)
        hot = remembered_check_seconds(database_url, keys[0])
    report({"floor": floor, "one": one, "new": new, "off": old}, count, period, hot)


def report(runs: dict[str, dict[str, Any]], count: int, period: float, hot: tuple[float, float]) -> None:
    check_bench, check_default = bcrypt_check_seconds(BENCH_ROUNDS), bcrypt_check_seconds(DEFAULT_ROUNDS)
    rate = count / period
    print(
        f"{count:,} API keys, each sending GET /v1/session every {period:g} s ({rate:g} requests/s), "
        f"one `faktry web` (2 processes x 8 threads), SQLite; keys hashed with bcrypt cost "
        f"{BENCH_ROUNDS} ({check_bench * 1000:.1f} ms a check; cost {DEFAULT_ROUNDS}: "
        f"{check_default * 1000:.0f} ms)"
    )
    labels = {
        "floor": "GET /healthz (no key)",
        "one": "one key for all, cache on",
        "new": f"{count:,} keys, Redis key cache on",
        "off": f"{count:,} keys, Redis key cache off",
    }
    for name, r in runs.items():
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        print(
            f"  {labels[name]:34} web CPU {r['cpu'] / r['seconds'] * 100:6.1f} % of a core  "
            f"{r['cpu'] / max(1, r['requests']) * 1000:6.2f} ms/request  "
            f"({r['requests']:,} requests in {r['seconds']:.1f} s = {r['rate']:.0f}/s; errors: {errors}; "
            f"late: {r['late']})"
        )

    def share(name: str) -> float:
        """CPU per second above the one-key run at the same request rate, % of one core."""
        r, one = runs[name], runs["one"]
        per_request = r["cpu"] / max(1, r["requests"]) - one["cpu"] / max(1, one["requests"])
        return per_request * rate * 100

    check, stamp = hot
    new, off = share("new"), share("off")
    stamps = count / 60 * stamp * 100
    print(f"  key checks of {count:,} keys (beyond one key's), % of one core:")
    print(f"    Redis key cache on    {new:6.1f} %   (target: at most 5 %)")
    print(
        f"    Redis key cache off   {off:6.1f} %   (with cost-{DEFAULT_ROUNDS} keys: about "
        f"{off * check_default / check_bench:,.0f} %)"
    )
    print(
        f"    and, both ways, last-use stamps (one per key a minute, after this window): "
        f"{stamps:.1f} % ({stamp * 1e6:.0f} µs each, in-process)"
    )
    on_cpu, off_cpu = (runs[n]["cpu"] / max(1, runs[n]["requests"]) for n in ("new", "off"))
    print(
        f"  ratio off/on, web CPU per request: {off_cpu / on_cpu:.1f}x (key checks: {off:.1f} vs "
        f"{new:.1f} % of a core; on a shared machine, a few % either way is noise)"
    )
    print(
        f"  a check of a remembered key (HMAC, key row read and its transaction; in-process): "
        f"{check * 1e6:.0f} µs, at 1,000 requests/s {check * 1000 * 100:.0f} % of one core"
    )
    floor, all_keys = runs["floor"], runs["new"]
    per_request = all_keys["cpu"] / max(1, all_keys["requests"]) - floor["cpu"] / max(1, floor["requests"])
    print(f"  an authenticated request above GET /healthz, in the server: {per_request * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
