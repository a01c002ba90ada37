"""A short smoke of the load test: the ``api`` scenario against a real faktry (``faktry up``).

``faktry up`` runs in a temp folder (SQLite, local disk, embedded Redis under ``var/``);
``python -m loadtests.run`` creates its tenant with the faktry CLI against the same
``var/``, runs locust in its own process and checks the jobs and the ledger after. Locust
never runs in this process: gevent would monkey-patch it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services as svc
from tests.platform import ROOT, Platform, Proc

TERMINAL = {"succeeded", "failed", "canceled"}


@pytest.fixture
def faktry_up(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = svc.free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKTRY_", "LOADTEST_"))}
    env.update(
        {
            "FAKTRY_PORT": str(port),
            "FAKTRY_BASE_URL": f"http://127.0.0.1:{port}",
            "FAKTRY_WORKER_PROCESSES": "2",
            "FAKTRY_BCRYPT_ROUNDS": "4",
        }
    )
    proc = Proc("up", [sys.executable, "-m", "faktry.cli", "up"], env, tmp_path, cwd=home)
    platform = Platform.__new__(Platform)
    platform.base = f"http://127.0.0.1:{port}"
    platform.procs = [proc]
    try:
        platform.wait_healthy(timeout=60)
        # The demo key is written once migrations ran and the demo account exists.
        deadline = time.monotonic() + 15
        while not (home / "var" / "demo-api-key").exists():
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        # The CLI the runner calls must find the same database: FAKTRY_VAR_DIR, made absolute.
        yield {
            "base": platform.base,
            "env": {**env, "FAKTRY_VAR_DIR": str(home / "var")},
            "platform": platform,
        }
    finally:
        proc.stop(timeout=60)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_api_scenario_runs_clean_against_a_real_faktry(faktry_up, tmp_path):
    out = tmp_path / "load"
    cmd = [
        sys.executable, "-m", "loadtests.run", "api", "--host", faktry_up["base"],
        "--users", "5", "--spawn-rate", "5", "--duration", "8s",
        "--setup-from-env", "--tenants", "1", "--drain-timeout", "60", "--out", str(out),
    ]  # fmt: skip
    runner = Proc("loadtest", cmd, faktry_up["env"], tmp_path, cwd=ROOT)
    try:
        rc = runner.popen.wait(timeout=150)
    finally:
        runner.stop()
    printed = runner.output()
    context = f"{printed}\n--- locust log ---\n{_tail(out / 'locust.log')}\n{faktry_up['platform'].logs()}"
    assert rc == 0, context
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"], context
    assert summary["requests"] > 0, context
    assert summary["failures"] == 0, context
    assert summary["exceptions"] == [], context
    jobs = summary["jobs"]
    assert jobs["submitted"] > 0, context
    assert jobs["lost"] == 0, context
    assert set(jobs["by_status"]) <= TERMINAL, context
    assert sum(jobs["by_status"].values()) == jobs["submitted"], context
    assert summary["ledger"]["ok"] is True, context
    assert "RESULT      PASS" in printed and "ledger      clean" in printed, context


def test_the_runner_refuses_a_host_that_is_not_loopback():
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "api", "--host", "http://192.0.2.1:8000", "--api-key", "x"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "not a loopback address" in done.stderr


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no locust log)"
