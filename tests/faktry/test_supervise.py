"""The supervisor behind `faktry worker` and `faktry up`, with tiny child commands."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from faktry.supervise import Child, Supervisor, describe_exit
from tests.platform import alive, children_of, processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def wait_for(what: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def in_group(pgid: int) -> list[int]:
    return [p.pid for p in processes() if p.pgid == pgid and p.alive]


@contextmanager
def running(supervisor: Supervisor) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        supervisor.stop()
        thread.join(30)
        assert not thread.is_alive()


def test_a_child_killed_with_sigkill_is_started_again_after_its_backoff_and_counted(caplog):
    caplog.set_level(logging.INFO, "faktry.supervise")
    restarts: list[tuple[str, float]] = []
    supervisor = Supervisor(
        [Child("one", SLEEPER), Child("two", SLEEPER)],
        on_restart=lambda name: restarts.append((name, time.monotonic())),
        min_backoff=0.5,
        grace=5,
    )
    with running(supervisor):
        first = wait_for(lambda: len(supervisor.pids()) == 2 and supervisor.pids())
        assert isinstance(first, dict)
        killed_at = time.monotonic()
        os.kill(first["one"], signal.SIGKILL)
        wait_for(lambda: supervisor.pids().get("one", first["one"]) != first["one"])
        again = supervisor.pids()
        assert again["two"] == first["two"], "the other child was left alone"
        assert alive(again["one"])
        [(name, restarted_at)] = restarts
        assert name == "one"
        assert restarted_at - killed_at >= 0.5
    assert not alive(again["one"]) and not alive(again["two"])
    assert f"one (pid {first['one']}) exited with signal SIGKILL" in caplog.text


def test_a_child_that_keeps_crashing_waits_longer_each_time_up_to_the_cap(caplog):
    caplog.set_level(logging.WARNING, "faktry.supervise")
    restarts: list[float] = []
    supervisor = Supervisor(
        [Child("crasher", [sys.executable, "-c", "raise SystemExit(3)"])],
        on_restart=lambda _: restarts.append(time.monotonic()),
        min_backoff=0.1,
        max_backoff=0.4,
        grace=5,
    )
    with running(supervisor):
        wait_for(lambda: len(restarts) >= 5, timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(restarts)]
    # Each gap is the child's own run (a Python start-up) plus its backoff: 0.2, 0.4, 0.4...
    for gap, backoff in zip(gaps, (0.2, 0.4, 0.4, 0.4), strict=False):
        assert backoff <= gap < backoff + 1.5, gaps
    assert "crasher" in caplog.text and "exited with exit code 3" in caplog.text


def test_a_child_that_stayed_up_long_enough_starts_again_after_the_shortest_backoff():
    restarts: list[float] = []
    supervisor = Supervisor(
        [Child("steady", [sys.executable, "-c", "import time; time.sleep(0.4); raise SystemExit(1)"])],
        on_restart=lambda _: restarts.append(time.monotonic()),
        min_backoff=0.1,
        max_backoff=5.0,
        stable_after=0.3,
        grace=5,
    )
    with running(supervisor):
        wait_for(lambda: len(restarts) >= 4, timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(restarts)]
    # Up 0.4 s then 0.1 s of backoff each time: never the doubled 0.2, 0.4, 0.8.
    assert all(0.5 <= gap < 0.5 + 1.0 for gap in gaps), gaps


def test_describe_exit_names_the_signal_that_killed_a_child():
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"


# -- the supervisor as its own process -----------------------------------------------------

# A child that ignores SIGTERM (killed after the grace), and one that started a grandchild
# in its process group (stopped with it).
SUPERVISOR = textwrap.dedent(
    """
    import logging, sys
    from faktry.supervise import Child, Supervisor

    logging.basicConfig(level=logging.INFO)
    py = sys.executable
    Supervisor(
        [
            Child("sleeper", [py, "-c", "import time; time.sleep(60)"]),
            Child("stubborn", [py, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                  "signal.SIG_IGN); time.sleep(60)"]),
            Child("parent", [py, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); "
                  "time.sleep(60)"]),
        ],
        grace=1.0,
    ).run()
    """
)


@pytest.fixture
def supervisor_process(tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "supervisor.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def _three_children(supervisor: subprocess.Popen[bytes]) -> list[int]:
    def grandchild_started() -> list[int] | None:
        pids = children_of(supervisor.pid)
        if len(pids) == 3 and sum(len(in_group(pid)) for pid in pids) == 4:
            return pids
        return None

    pids = wait_for(grandchild_started)
    assert isinstance(pids, list)
    return pids


def test_sigterm_stops_every_child_and_its_group_then_the_supervisor_exits(supervisor_process):
    pids = _three_children(supervisor_process)
    groups = {pid: in_group(pid) for pid in pids}
    # Without this the test could pass with a supervisor that never started stubborn's handler.
    time.sleep(0.3)
    stopped_at = time.monotonic()
    supervisor_process.send_signal(signal.SIGTERM)
    assert supervisor_process.wait(10) == 0
    took = time.monotonic() - stopped_at
    assert 1.0 <= took < 5.0, "stubborn was killed once the 1 s grace was over"
    for pid, members in groups.items():
        assert not [p for p in members if alive(p)], f"{pid}'s group outlived the supervisor"


def test_a_supervisor_killed_with_sigkill_takes_its_children_with_it(supervisor_process):
    pids = _three_children(supervisor_process)
    groups = {pid: in_group(pid) for pid in pids}
    supervisor_process.kill()
    supervisor_process.wait()
    try:
        wait_for(lambda: not [p for p in pids if alive(p)], timeout=5)
    finally:
        # The kernel's signal reaches the supervisor's children; what they started is theirs.
        for members in groups.values():
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
