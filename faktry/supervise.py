"""Keep a set of named child processes running: the process manager inside `faktry worker`
and `faktry up`.

Each child runs in its own process group, so stopping it stops whatever it started too.
When a child exits on its own it is logged with why (its exit code or the signal that
killed it, such as SIGKILL from the out-of-memory killer), whatever is left of its group is
killed, and it is started again after a backoff: `min_backoff` doubling on each exit up to
`max_backoff`, back to `min_backoff` once a child has stayed up for `stable_after`. Every
restart is reported to `on_restart(name)`; the other children are not touched.

On SIGTERM or SIGINT (or `stop()`) nothing is restarted any more: every child's group gets
SIGTERM, has up to `grace` seconds to exit, and what is left then gets SIGKILL. Children
also get SIGKILL from the kernel when the supervisor dies without stopping them (Linux
``PR_SET_PDEATHSIG``), so a supervisor killed with SIGKILL leaves nothing running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faktry.procs import die_with_parent

log = logging.getLogger("faktry.supervise")


@dataclass(frozen=True)
class Child:
    """A command to keep running. `env` None means the supervisor's own environment."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] | None = None


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``signal SIGKILL``, from a `subprocess.Popen.returncode`."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


class _Slot:
    """One child and its restart state."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.next_start = 0.0  # monotonic time at which to start it (again)
        self.backoff = 0.0  # the delay before the latest restart; 0 before the first exit
        self.starts = 0


class Supervisor:
    """Keeps `children` running (see the module docstring); `run` returns once they are all
    stopped. Times are in seconds."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        on_restart: Callable[[str], None] | None = None,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        grace: float = 30.0,
        poll_interval: float = 0.1,
    ) -> None:
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"children need distinct names: {names}")
        self.slots = [_Slot(c) for c in children]
        self.on_restart = on_restart
        self.min_backoff = min_backoff
        self.max_backoff = max(max_backoff, min_backoff)
        self.stable_after = stable_after
        self.grace = grace
        self.poll_interval = poll_interval
        self._stopping = False

    # -- public ----------------------------------------------------------------------------

    def run(self) -> None:
        """Start every child and keep them running until SIGTERM/SIGINT or `stop()`, then stop
        them all. Signal handlers are installed only when called from the main thread."""
        restore = self._install_signal_handlers()
        try:
            while not self._stopping:
                self._tick()
                time.sleep(self.poll_interval)
        finally:
            self._stop_children()
            for signum, handler in restore.items():
                signal.signal(signum, handler)

    def stop(self) -> None:
        """Ask `run` to stop every child and return (safe from a signal handler or a thread)."""
        self._stopping = True

    def pids(self) -> dict[str, int]:
        """The pid of each child running now."""
        return {
            s.child.name: s.process.pid
            for s in self.slots
            if s.process is not None and s.process.poll() is None
        }

    # -- the loop --------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def _handler(_signum: int, _frame: Any) -> None:
            self.stop()

        restore: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            restore[signum] = signal.signal(signum, _handler)
        return restore

    def _tick(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if self._stopping:
                return
            if slot.process is not None:
                returncode = _reap(slot.process)
                if returncode is not None:
                    self._exited(slot, returncode, now)
            elif now >= slot.next_start:
                self._start(slot)

    def _exited(self, slot: _Slot, returncode: int, now: float) -> None:
        assert slot.process is not None
        pid, uptime = slot.process.pid, now - slot.started_at
        slot.process = None
        if uptime >= self.stable_after or slot.backoff == 0:
            slot.backoff = self.min_backoff
        else:
            slot.backoff = min(slot.backoff * 2, self.max_backoff)
        slot.next_start = now + slot.backoff
        log.warning(
            "%s (pid %d) exited with %s after %.1f s; starting it again in %.1f s",
            slot.child.name, pid, describe_exit(returncode), uptime, slot.backoff,
        )  # fmt: skip

    def _start(self, slot: _Slot) -> None:
        restart = slot.starts > 0
        slot.starts += 1
        slot.started_at = time.monotonic()
        try:
            slot.process = subprocess.Popen(
                list(slot.child.command),
                env=dict(slot.child.env) if slot.child.env is not None else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError:
            log.exception("%s could not be started", slot.child.name)
            slot.backoff = min(max(slot.backoff * 2, self.min_backoff), self.max_backoff)
            slot.next_start = slot.started_at + slot.backoff
            return
        if restart:
            log.info("%s started again (pid %d)", slot.child.name, slot.process.pid)
            self._count_restart(slot.child.name)

    def _count_restart(self, name: str) -> None:
        if self.on_restart is None:
            return
        try:
            self.on_restart(name)
        except Exception:  # a counter must never stop the supervisor from supervising
            log.exception("counting the restart of %s failed", name)

    def _stop_children(self) -> None:
        running = {s.child.name: s.process for s in self.slots if s.process is not None}
        for slot in self.slots:
            slot.process = None
        log.info("stopping %s", ", ".join(running) or "(nothing running)")
        for process in running.values():
            _kill_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while running and time.monotonic() < deadline:
            running = {n: p for n, p in running.items() if _reap(p) is None}
            time.sleep(min(self.poll_interval, 0.05))
        for name, process in running.items():
            log.warning("%s (pid %d) still running after %.1f s; killing it", name, process.pid, self.grace)
            _kill_group(process.pid, signal.SIGKILL)
            process.wait()


def _reap(process: subprocess.Popen[bytes]) -> int | None:
    """The child's exit status once it has exited, else None. Before reaping it, whatever is
    left in its process group is killed: what a child started must not outlive it, and until
    the child is reaped its id cannot name another process's group."""
    if process.returncode is not None:
        return process.returncode
    try:
        exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere
        return process.poll()
    if exited is None:
        return None
    _kill_group(process.pid, signal.SIGKILL)
    return process.wait()


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
