"""`faktry up` as a newcomer runs it: on the port asked for, saying it is up only once the web
server answers, and refusing a busy port before starting anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.platform import ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FAKTRY_VAR_DIR": str(tmp_path / "var"),
        "FAKTRY_WORKER_PROCESSES": "1",
        "FAKTRY_WEB_WORKERS": "1",
        "FAKTRY_BCRYPT_ROUNDS": "4",
    }
    for name in ("FAKTRY_DATABASE_URL", "FAKTRY_REDIS_URL", "FAKTRY_BROKER_URL", "FAKTRY_STORAGE_URL"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "faktry.cli", "up", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _stop(process: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def test_up_on_a_free_port_says_it_is_up_only_once_the_web_answers_there(tmp_path: Path) -> None:
    port = _free_port()
    process = _up(tmp_path, port)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 180
        said = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("faktry is up at"):
                said = line
                break
        # Asked right after the line: it was printed once /healthz answered.
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        rest = process.stdout.readline() + process.stdout.readline()
    finally:
        _stop(process)

    assert said.startswith(f"faktry is up at http://127.0.0.1:{port}"), said
    assert health.status_code == 200
    assert "20 credits" in rest and "test mode" in rest


def test_up_on_a_busy_port_says_so_and_exits_non_zero_having_started_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _up(tmp_path, port)
        try:
            out, err = process.communicate(timeout=120)
        finally:
            _stop(process)

    assert process.returncode != 0
    assert f"port {port} on 127.0.0.1 is busy" in err
    assert "faktry is up" not in out
    assert not (tmp_path / "var" / "faktry.db").exists()  # nothing migrated, nothing started


def test_the_package_states_its_license_as_an_spdx_string_so_builds_print_no_deprecation() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert isinstance(project["project"]["license"], str)
    assert "setuptools>=77" in project["build-system"]["requires"]
