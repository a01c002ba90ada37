"""An HTTP client for URLs that tenants choose: nothing it sends can reach inside.

Two calls: `post` (a webhook delivery: one POST, its answer's start read) and `get` (a URL
input: one GET whose body is streamed to a file, following a few redirects).

- The host is resolved first; when any of its addresses is loopback, private, link-local
  (cloud metadata lives there), shared, multicast, reserved or unspecified, the request is
  `Refused` before a connection is made. Loopback is allowed only when ``allow_loopback``
  is set (tests and a laptop), never in production.
- The connection goes to the address that was checked (pinned), so a second resolution
  cannot send it elsewhere; the ``Host`` header and TLS server name stay the URL's.
- `post` never follows a redirect (a 3xx is an answer like any other, and not a success).
  `get` follows at most ``max_redirects``, each new URL checked, resolved and pinned as the
  first was; one more is `Refused` (``too_many_redirects``).
- Connecting and each read have short timeouts, and the whole exchange (for `get`, every
  redirect included) has a deadline after which the socket is shut: a server that never
  answers, or streams forever, holds the calling thread for at most ``total_timeout`` seconds.
- At most ``max_body`` bytes of the answer are read: `post` keeps that much, `get` raises
  `TooLarge` (before reading, when the declared length is already beyond it).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """The URL may not be called (``code`` says why: ``bad_url``, ``blocked_address``,
    ``unresolvable``, ``too_many_redirects``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TooLarge(Exception):
    """The answer's body is larger than ``Limits.max_body`` (`get`)."""


class BadStatus(Exception):
    """`get` ended on an answer that is not a success (``status``), nor a redirect it followed."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server answered {status}")
        self.status = status


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    total_timeout: float = 10.0
    max_body: int = 64 * 1024
    allow_loopback: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


@dataclass(frozen=True)
class Fetched:
    """What `get` wrote: the URL it came from at last, its type as the server called it (a
    claim only: the bytes decide), its size and the redirects followed to it."""

    url: str
    content_type: str
    size: int
    redirects: int


class Sink(Protocol):
    """Where `get` writes a body (an open binary file, or one that hashes as it writes)."""

    def write(self, data: bytes, /) -> object: ...


#: The answers `get` follows to their ``Location``.
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def system_resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise Refused("unresolvable", f"cannot resolve {host}: {err}") from None
    return [str(info[4][0]) for info in infos]


def blocked(address: Address, *, allow_loopback: bool) -> bool:
    """Whether a request to ``address`` could reach inside the platform's network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return not allow_loopback
    return (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
    )


def check_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path?query)`` of an http(s) URL without credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("bad_url", "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("bad_url", "the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise Refused("bad_url", "the URL must not carry a user name or password")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), target


def literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def pin(host: str, port: int, limits: Limits, resolve: Resolver) -> str:
    """The one address the connection goes to, after every address of ``host`` passed."""
    if host == "localhost" or host.endswith(".localhost"):
        found = ["127.0.0.1"]
    else:
        literal = literal_address(host)
        found = [str(literal)] if literal is not None else resolve(host, port)
    if not found:
        raise Refused("unresolvable", f"{host} has no address")
    for raw in found:
        if blocked(ipaddress.ip_address(raw.split("%")[0]), allow_loopback=limits.allow_loopback):
            raise Refused("blocked_address", f"{host} resolves to {raw}, which is not reachable from here")
    return found[0]


class _Pinned(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, limits: Limits) -> None:
        super().__init__(host, port, timeout=limits.read_timeout)
        self.address = address
        self.limits = limits
        #: The connected socket, kept after http.client lets go of it (the deadline shuts it).
        self.raw: socket.socket | None = None
        self.cut = False

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), timeout=self.limits.connect_timeout)
        sock.settimeout(self.limits.read_timeout)
        self.raw = sock
        self.sock = self.wrap(sock)

    def wrap(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedTLS(_Pinned):
    context = ssl.create_default_context()

    def wrap(self, sock: socket.socket) -> socket.socket:
        return self.context.wrap_socket(sock, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    limits: Limits,
    resolve: Resolver = system_resolve,
) -> Answer:
    """POST ``body`` to ``url`` within ``limits``. Raises `Refused` before connecting, and
    ``OSError`` (timeouts included) or ``http.client.HTTPException`` when the exchange
    fails."""
    with _connected(url, limits, resolve, limits.total_timeout) as (conn, target):
        conn.request("POST", target, body=body, headers={**headers, "Content-Type": "application/json"})
        response = conn.getresponse()
        chunks: list[bytes] = []
        left = limits.max_body
        while left > 0:
            chunk = response.read1(min(left, 16 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    return Answer(response.status, b"".join(chunks))


def get(
    url: str,
    dest: Sink,
    limits: Limits,
    *,
    max_redirects: int = 5,
    headers: Mapping[str, str] | None = None,
    resolve: Resolver = system_resolve,
) -> Fetched:
    """GET ``url`` and write its body to ``dest`` as it arrives, within ``limits`` (the
    deadline covers every redirect). Raises `Refused` before connecting to a URL (the first
    or one redirected to), `TooLarge`, `BadStatus`, and ``OSError`` (timeouts included) or
    ``http.client.HTTPException`` when an exchange fails. What was written before an error
    stays in ``dest``: the caller throws it away."""
    deadline = time.monotonic() + limits.total_timeout
    sent = {"Accept": "*/*", "Accept-Encoding": "identity", **(headers or {})}
    for hop in range(max_redirects + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the server did not finish within the deadline")
        with _connected(url, limits, resolve, left) as (conn, target):
            conn.request("GET", target, headers=sent)
            response = conn.getresponse()
            location = response.getheader("Location")
            if response.status in REDIRECTS and location:
                url = urljoin(url, location.strip())
                continue
            if not 200 <= response.status < 300:
                raise BadStatus(response.status)
            size = _stream(response, dest, limits.max_body)
            return Fetched(url, response.getheader("Content-Type") or "", size, hop)
    raise Refused("too_many_redirects", f"more than {max_redirects} redirects")


def _stream(response: http.client.HTTPResponse, dest: Sink, max_body: int) -> int:
    declared = response.getheader("Content-Length") or ""
    if declared.isdigit() and int(declared) > max_body:
        raise TooLarge(f"the body is {declared} bytes, more than {max_body}")
    size = 0
    while chunk := response.read1(64 * 1024):
        size += len(chunk)
        if size > max_body:
            raise TooLarge(f"the body is more than {max_body} bytes")
        dest.write(chunk)
    return size


@contextlib.contextmanager
def _connected(url: str, limits: Limits, resolve: Resolver, seconds: float) -> Iterator[tuple[_Pinned, str]]:
    """A connection to the checked, pinned address of ``url`` (not yet opened: the first
    request opens it) and the request target; shut when ``seconds`` have passed, whatever
    the server does, and closed on leaving."""
    scheme, host, port, target = check_url(url)
    address = pin(host, port, limits, resolve)
    kind = _PinnedTLS if scheme == "https" else _Pinned
    conn = kind(host, port, address, limits)
    timer = threading.Timer(seconds, _shut, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        yield conn, target
    except (OSError, http.client.HTTPException) as err:
        if conn.cut:
            raise TimeoutError("the server did not answer within the deadline") from err
        raise
    finally:
        timer.cancel()
        conn.close()
        if conn.raw is not None:
            conn.raw.close()
    if conn.cut:
        raise TimeoutError("the server did not finish within the deadline")


def _shut(conn: _Pinned) -> None:
    conn.cut = True
    sock = conn.raw
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
