"""The runner's dealings with faktry itself: tenants through its CLI, job states, the ledger check.

The CLI runs as ``python -m faktry.cli`` with this process's environment, so it reads the
same ``FAKTRY_*`` variables (database, var dir) as the server under test must.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from loadtests.common import TERMINAL, Tenant

_KEY_LINE = re.compile(r"API key \(shown once\): (\S+)")


class SetupError(RuntimeError):
    pass


def faktry(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faktry.cli", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def create_tenants(roles: dict[str, int], *, tier: str, credits: float) -> list[Tenant]:
    """New tenants (``count`` per role), each with an API key and ``credits``, made with the CLI."""
    run_id = uuid.uuid4().hex[:8]
    wanted = [(role, i) for role, count in roles.items() for i in range(count)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda ri: _create(run_id, ri[0], ri[1], tier, credits), wanted))


def _create(run_id: str, role: str, index: int, tier: str, credits: float) -> Tenant:
    email = f"load-{run_id}-{role}-{index}@loadtest.invalid"
    made = faktry("tenants", "create", "--email", email, "--tier", tier)
    match = _KEY_LINE.search(made.stdout)
    if made.returncode != 0 or match is None:
        raise SetupError(f"faktry tenants create --email {email} failed:\n{made.stdout}{made.stderr}")
    if credits > 0:
        granted = faktry(
            "credits", "grant", "--email", email, "--credits", f"{credits:g}", "--reason", "load test"
        )
        if granted.returncode != 0:
            raise SetupError(
                f"faktry credits grant --email {email} failed:\n{granted.stdout}{granted.stderr}"
            )
    return Tenant(name=f"{role}-{index}", role=role, key=match.group(1), email=email)


def healthy(host: str) -> bool:
    try:
        return requests.get(f"{host}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Outcome:
    """Where every submitted job ended up after the run."""

    submitted: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: Job ids not terminal at the deadline (or unknown to the API): lost.
    open: dict[str, str] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return len(self.open)


def settle(
    host: str, jobs: list[dict[str, str]], tenants: list[Tenant], *, timeout: float, interval: float = 1.0
) -> Outcome:
    """Poll every job until it is terminal or ``timeout`` passes."""
    keys = {t.name: t.key for t in tenants}
    pending = {j["job"]: j["tenant"] for j in jobs}
    outcome = Outcome(submitted=len(pending))
    local = threading.local()

    def fetch(item: tuple[str, str]) -> tuple[str, int, dict[str, Any]]:
        job_id, tenant = item
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        try:
            r = session.get(
                f"{host}/v1/jobs/{job_id}",
                headers={"Authorization": f"Bearer {keys.get(tenant, '')}"},
                timeout=10,
            )
            body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
            return job_id, r.status_code, body if isinstance(body, dict) else {}
        except (requests.RequestException, ValueError) as exc:
            return job_id, 0, {"status": f"unreachable ({exc.__class__.__name__})"}

    last: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=8) as pool:
        while pending:
            for job_id, status_code, body in pool.map(fetch, list(pending.items())):
                status = body.get("status") if status_code == 200 else None
                if status in TERMINAL:
                    outcome.by_status[status] += 1
                    error = body.get("error")
                    if isinstance(error, dict) and error.get("code"):
                        outcome.errors[str(error["code"])] += 1
                    del pending[job_id]
                else:
                    last[job_id] = str(status or body.get("status") or f"HTTP {status_code}")
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(interval)
    outcome.open = {job_id: last[job_id] for job_id in pending}
    for state in outcome.open.values():
        outcome.by_status[state] += 1
    return outcome


def ledger_check() -> tuple[bool, str]:
    done = faktry("ledger", "check", timeout=600)
    text = (done.stdout + done.stderr).strip()
    lines = text.splitlines()
    if len(lines) > 20:
        lines = [*lines[:20], f"... ({len(lines) - 20} more lines)"]
    return done.returncode == 0, "\n".join(lines)
