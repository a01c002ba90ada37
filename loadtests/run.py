"""Run one load scenario against a running faktry and check what it left behind.

    python -m loadtests.run SCENARIO --host http://127.0.0.1:8000 [--users N] [--spawn-rate R]
        [--duration 30s] [--setup-from-env | --keys-file F | --api-key K] [--out DIR]

1. With ``--setup-from-env``, creates the scenario's tenants with the faktry CLI (same
   ``FAKTRY_*`` environment as the server), grants them credits and writes their keys to a
   file that the locustfile reads through ``LOADTEST_KEYS_FILE``.
2. Runs locust headless in its own process (gevent stays out of this one), bounded in time.
3. Prints requests, failures and latency from locust's JSON stats, then polls every job the
   users submitted until it is terminal (or ``--drain-timeout``), and runs
   ``faktry ledger check``.

Exit status: 0 when every request was answered as expected, every job reached a terminal
state and the ledger is clean; 1 otherwise; 2 for a refused host or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests import common, report, target

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
ROOT = LOCUSTFILE.parents[1]


@dataclass(frozen=True)
class Scenario:
    classes: tuple[str, ...]
    #: Tenants to create per role; ``None`` means ``--tenants``.
    roles: dict[str, int | None]
    users: int
    spawn_rate: float | None  # None: all users at once
    duration: str
    about: str


SCENARIOS = {
    "api": Scenario(
        classes=("ApiClient",), roles={"api": None}, users=10, spawn_rate=2, duration="60s",
        about="API clients, mixed media workload",
    ),
    "burst": Scenario(
        classes=("BurstClient",), roles={"api": None}, users=20, spawn_rate=None, duration="30s",
        about="many submits at once",
    ),
    "noisy": Scenario(
        classes=("NoisyTenant", "QuietTenant"), roles={"noisy": 1, "quiet": None}, users=6, spawn_rate=None,
        duration="60s", about="a noisy tenant (2 users) beside quiet ones",
    ),
    "browse": Scenario(
        classes=("WebUser",), roles={"web": None}, users=10, spawn_rate=2, duration="60s",
        about="web users browsing their library",
    ),
    "soak": Scenario(
        classes=("SoakClient",), roles={"api": None}, users=3, spawn_rate=1, duration="30m",
        about="steady low rate for a long time",
    ),
}  # fmt: skip


def parse_duration(text: str) -> int:
    """Seconds from ``90``, ``30s``, ``5m``, ``1h30m`` (locust's format)."""
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a duration (30s, 5m, 1h30m)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Run a locust scenario against faktry on loopback; check jobs and the ledger after.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n" + "\n".join(f"  {k:7} {s.about}" for k, s in SCENARIOS.items()),
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--host", required=True, help="base URL of faktry; loopback only")
    parser.add_argument("--users", "-u", type=int, help="concurrent users (default per scenario)")
    parser.add_argument("--spawn-rate", "-r", type=float, help="users started per second")
    parser.add_argument("--duration", "-t", type=parse_duration, help="run time: 30s, 5m, 1h30m")
    keys = parser.add_argument_group("tenants (at least one of)")
    keys.add_argument(
        "--setup-from-env", action="store_true", help="create tenants with the faktry CLI (FAKTRY_* env)"
    )
    keys.add_argument("--keys-file", type=Path, help="JSON keys file (see loadtests/common.py)")
    keys.add_argument("--api-key", action="append", default=[], help="an existing API key (repeatable)")
    parser.add_argument("--tenants", type=int, default=2, help="tenants per role to create (default 2)")
    parser.add_argument("--tier", default="studio", help="tier of created tenants (default studio)")
    parser.add_argument("--credits", type=float, default=1000, help="credits per created tenant")
    parser.add_argument(
        "--drain-timeout", type=parse_duration, default=120, help="how long to wait for jobs to finish"
    )
    parser.add_argument("--no-ledger-check", action="store_true", help="skip `faktry ledger check`")
    parser.add_argument("--out", type=Path, help="keep keys, job log, stats, logs and reports here")
    args = parser.parse_args(argv)
    if not (args.setup_from_env or args.keys_file or args.api_key):
        parser.error("give --setup-from-env, --keys-file or --api-key")
    scenario = SCENARIOS[args.scenario]
    args.users = args.users or scenario.users
    args.spawn_rate = args.spawn_rate or scenario.spawn_rate or float(args.users)
    args.duration = args.duration or parse_duration(scenario.duration)
    args.host = args.host.rstrip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        common.check_loopback(args.host)
    except common.HostRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if not target.healthy(args.host):
        print(f"faktry does not answer at {args.host}/healthz", file=sys.stderr)
        return 1
    try:
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            return run(args, args.out.resolve())
        with tempfile.TemporaryDirectory(prefix="faktry-load-") as tmp:
            return run(args, Path(tmp))
    except Terminated:
        print("terminated: locust stopped", file=sys.stderr)
        return 143


def run(args: argparse.Namespace, out: Path) -> int:
    scenario = SCENARIOS[args.scenario]
    try:
        tenants = _tenants(args, scenario)
    except (target.SetupError, OSError, ValueError, KeyError) as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    keys_file = out / "keys.json"
    common.write_tenants(keys_file, tenants)
    jobs_file = out / "jobs.jsonl"
    jobs_file.unlink(missing_ok=True)

    print(
        f"faktry load test: {args.scenario} ({scenario.about}), {args.users} users "
        f"at {args.spawn_rate:g}/s for {args.duration} s against {args.host}, {len(tenants)} tenant(s)",
        flush=True,
    )
    locust_rc = _locust(args, scenario, out, keys_file, jobs_file)
    stats_path = out / "stats.json"  # --json-file appends .json itself
    problems: list[str] = []
    if not stats_path.exists():
        problems.append(
            f"locust wrote no stats (exit {locust_rc}); see its log:\n{_tail(out / 'locust.log')}"
        )
        stats = report.summarize([])
    else:
        stats = report.summarize(json.loads(stats_path.read_text()))
    extra = _read_json(out / "errors.json") or {"errors": [], "exceptions": []}

    jobs = common.read_jobs(jobs_file)
    outcome = target.settle(args.host, jobs, tenants, timeout=args.drain_timeout)
    ledger_ok, ledger_text = (None, "skipped") if args.no_ledger_check else target.ledger_check()

    if locust_rc not in (0, 1):
        problems.append(f"locust exited {locust_rc}")
    if stats["requests"] == 0:
        problems.append("no requests were made")
    if stats["failures"]:
        problems.append(f"{stats['failures']} unexpected request failure(s)")
    if extra["exceptions"]:
        problems.append(f"{sum(e['count'] for e in extra['exceptions'])} exception(s) in user tasks")
    if outcome.lost:
        problems.append(f"{outcome.lost} job(s) lost (not terminal after {args.drain_timeout} s)")
    if ledger_ok is False:
        problems.append("faktry ledger check failed")

    summary = {
        "scenario": args.scenario,
        "host": args.host,
        "users": args.users,
        "duration_s": args.duration,
        "locust_exit_code": locust_rc,
        **stats,
        "errors": extra["errors"],
        "exceptions": extra["exceptions"],
        "jobs": {
            "submitted": outcome.submitted,
            "by_status": dict(outcome.by_status),
            "errors": dict(outcome.errors),
            "lost": outcome.lost,
            "open": dict(list(outcome.open.items())[:50]),
        },
        "ledger": {"ok": ledger_ok, "output": ledger_text},
        "problems": problems,
        "ok": not problems,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print(summary, out if args.out else None)
    return 0 if summary["ok"] else 1


def _tenants(args: argparse.Namespace, scenario: Scenario) -> list[common.Tenant]:
    tenants: list[common.Tenant] = []
    if args.keys_file:
        tenants += common.read_tenants(args.keys_file)
    tenants += [common.Tenant(name=f"key-{i}", role="any", key=k) for i, k in enumerate(args.api_key)]
    if args.setup_from_env:
        roles = {role: count or args.tenants for role, count in scenario.roles.items()}
        print(f"creating tenants with the faktry CLI: {roles} ({args.tier}, {args.credits:g} credits each)")
        tenants += target.create_tenants(roles, tier=args.tier, credits=args.credits)
    return tenants


def _locust(args: argparse.Namespace, scenario: Scenario, out: Path, keys_file: Path, jobs_file: Path) -> int:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(args.users), "--spawn-rate", f"{args.spawn_rate:g}",
        "--run-time", f"{args.duration}s", "--stop-timeout", "10",
        "--host", args.host, "--json-file", str(out / "stats"),
        "--only-summary", "--loglevel", "INFO",
    ]  # fmt: skip
    if args.out:
        # Artifacts for a person; the figures come from the JSON (the CSVs can lag by a second).
        cmd += ["--csv", str(out / "locust"), "--csv-full-history", "--html", str(out / "report.html")]
    cmd += list(scenario.classes)
    env = {
        **os.environ,
        common.KEYS_ENV: str(keys_file),
        common.JOBS_ENV: str(jobs_file),
        common.DIR_ENV: str(out),
    }
    limit = args.duration + 120  # start-up, uploads, the stop timeout
    with (out / "locust.log").open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        # Locust has its own process group: a SIGTERM to this one must reach it too.
        previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            return proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            print(f"locust still running after {limit} s: stopping it", file=sys.stderr)
            return _stop(proc)
        except (KeyboardInterrupt, Terminated):
            _stop(proc)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)


class Terminated(Exception):
    """SIGTERM arrived while locust ran."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _stop(proc: subprocess.Popen[bytes]) -> int:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    return proc.returncode if proc.returncode is not None else -9


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _print(s: dict[str, Any], kept: Path | None) -> None:
    ms = report.ms
    print()
    print(f"requests    {s['requests']} ({s['rps']}/s), {s['failures']} unexpected failure(s)")
    print(
        f"latency     p50 {ms(s['p50_ms'])}  p95 {ms(s['p95_ms'])}  p99 {ms(s['p99_ms'])}"
        f"  max {ms(s['max_ms'])}"
    )
    handled = ", ".join(f"{name}: {n}" for name, n in sorted(s["handled"].items())) or "none"
    print(f"handled     {handled}  (expected refusals, not failures)")
    print("endpoints")
    for row in s["endpoints"]:
        print(
            f"  {row['method']:6} {row['name']:38} {row['requests']:6} req {row['failures']:4} fail"
            f"  p50 {ms(row['p50_ms']):>8}  p95 {ms(row['p95_ms']):>8}"
        )
    if s["turnaround"]:
        print("turnaround  (submit to terminal, jobs the users waited for)")
        for row in s["turnaround"]:
            timing = f"p50 {ms(row['p50_ms']):>8}  p95 {ms(row['p95_ms']):>8}"
            print(f"  {row['job']:38} {row['count']:6} jobs  {timing}")
    for error in s["errors"][:5]:
        print(f"  error: {error['method']} {error['name']}: {error['error']} (x{error['occurrences']})")
    for exc in s["exceptions"][:3]:
        print(f"  exception in a task (x{exc['count']}): {exc['msg']}")
    jobs = s["jobs"]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(jobs["by_status"].items())) or "none"
    codes = ", ".join(f"{k} {v}" for k, v in sorted(jobs["errors"].items()))
    print(
        f"jobs        {jobs['submitted']} submitted: {statuses}"
        + (f"  (error codes: {codes})" if codes else "")
    )
    print(f"            {'none lost' if not jobs['lost'] else str(jobs['lost']) + ' LOST (not terminal)'}")
    ledger = s["ledger"]
    verdict = "skipped" if ledger["ok"] is None else ("clean" if ledger["ok"] else "FAILED")
    print(f"ledger      {verdict}" + ("\n" + ledger["output"] if ledger["ok"] is False else ""))
    if kept:
        print(f"artifacts   {kept}")
    print("RESULT      " + ("PASS" if s["ok"] else "FAIL: " + "; ".join(s["problems"])))


if __name__ == "__main__":
    sys.exit(main())
