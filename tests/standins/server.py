"""Serve a WSGI app on 127.0.0.1 and a free port, in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Drops the per-request access log line; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ServedApp:
    """A running server. ``url`` is ``http://127.0.0.1:<port>`` (no trailing slash)."""

    def __init__(self, app: Any, name: str = "standin") -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(app: Any, name: str = "standin") -> ServedApp:
    return ServedApp(app, name)


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve a plain `http.server` handler class on loopback, a thread per request, for the
    block; yields ``http://127.0.0.1:<port>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Served:
    """The lifecycle every stand-in shares: serve its Flask ``app`` on loopback (``start`` or
    ``with``), and on ``stop`` wake any request its ``faults`` stalled before shutting down."""

    name = "standin"
    app: Any
    faults: Any
    url: str
    _served: ServedApp | None

    def start(self) -> Self:
        self._served = serve(self.app, self.name)
        self.url = self._served.url
        return self

    def stop(self) -> None:
        self.faults.reset()
        if self._served is not None:
            self._served.stop()
            self._served = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
