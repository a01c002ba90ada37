"""What the runner and the locust process share: the loopback rule and the files between them.

Standard library only: ``loadtests.run`` imports this, and must not import locust (gevent
monkey-patches whatever process imports it).

Files, named by environment variables the runner sets for the locust process:

- ``LOADTEST_KEYS_FILE``: JSON ``{"tenants": [{"name", "email", "role", "key"}, ...]}``;
  users take tenants of their scenario's role, round robin (any tenant if none has the role).
- ``LOADTEST_JOBS_FILE``: JSON lines ``{"job": id, "tenant": name, "type": job type}``, one
  per job the users submitted (a 202), appended by the locust process.
- ``LOADTEST_DIR``: the locust process's scratch folder: generated media, ``errors.json``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

KEYS_ENV = "LOADTEST_KEYS_FILE"
JOBS_ENV = "LOADTEST_JOBS_FILE"
DIR_ENV = "LOADTEST_DIR"

TERMINAL = ("succeeded", "failed", "canceled")
#: Answers to ``POST /v1/jobs`` a client must expect under load; counted apart, not failures.
EXPECTED_SUBMIT_REFUSALS = {402: "insufficient_credits", 429: "rate_limited"}


class HostRefused(ValueError):
    """The target is not a loopback address: this workplace forbids load on other hosts."""


def check_loopback(url: str | None) -> str:
    """Return ``url`` if every address its host resolves to is loopback; raise `HostRefused`."""
    if not url:
        raise HostRefused("no --host given")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostRefused(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise HostRefused(f"cannot resolve {host!r}: {exc}") from None
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}
    if not addresses or not all(a.is_loopback for a in addresses):
        shown = ", ".join(sorted(str(a) for a in addresses))
        raise HostRefused(f"{host} ({shown}) is not a loopback address; load tests only target loopback")
    return url


@dataclass(frozen=True)
class Tenant:
    name: str
    role: str
    key: str
    email: str = ""


def write_tenants(path: Path, tenants: list[Tenant]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the file holds API keys
    with os.fdopen(fd, "w") as fh:
        json.dump({"tenants": [asdict(t) for t in tenants]}, fh, indent=2)


def read_tenants(path: Path) -> list[Tenant]:
    data = json.loads(path.read_text())
    return [
        Tenant(name=t["name"], role=t.get("role", "api"), key=t["key"], email=t.get("email", ""))
        for t in data["tenants"]
    ]


def read_jobs(path: Path) -> list[dict[str, str]]:
    """The job log; a line cut short by a killed process is skipped, not fatal."""
    if not path.exists():
        return []
    jobs = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "job" in entry and "tenant" in entry:
            jobs.append(entry)
    return jobs
