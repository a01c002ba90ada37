"""A webhook receiver on loopback that answers as each test scripts it, and settings that
let webhooks reach loopback with an immediate retry schedule."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from faktry.config import Settings
from faktry.db import make_engine, make_sessionmaker
from pipelines.webhooks import delivery
from tests.conftest import make_settings
from tests.standins.server import serve_handler


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each request with the next of ``script`` (then the last one again): a status
    code, ``("redirect", url)``, ``"hang"`` (never answers) or ``"trickle"`` (a 200 whose
    body never ends)."""

    script: list[Any] = field(default_factory=lambda: [200])
    got: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def next_answer(self) -> Any:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve() as state:
        yield state


@contextmanager
def serve() -> Iterator[Receiver]:
    """A `Receiver` on a free loopback port, for as long as the block runs."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            answer = state.next_answer()
            if answer == "hang":
                state.stop.wait(30)
                return
            if answer == "trickle":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while not state.stop.wait(0.05):
                    try:
                        self.wfile.write(b"1\r\nx\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                return
            if isinstance(answer, tuple):
                self.send_response(302)
                self.send_header("Location", answer[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            text = b"ok" if answer < 300 else b"not now"
            self.send_response(answer)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    with serve_handler(Handler) as base:
        state.url = f"{base}/hook"
        try:
            yield state
        finally:
            state.stop.set()  # stalled answers give way before the server stops


HOOK_SETTINGS: dict[str, Any] = {
    "webhook_allow_loopback": True,
    "webhook_retry_schedule": "0,0,0,0,0",
    "webhook_retry_jitter": 0.0,
    "webhook_connect_timeout": 1.0,
    "webhook_read_timeout": 0.5,
    "webhook_total_timeout": 1.0,
}


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str) -> Settings:
    return make_settings(tmp_path, db_url, redis_namespace, **HOOK_SETTINGS)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[Any]:
    engine = make_engine(settings.resolved_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def policy(settings: Settings) -> delivery.Policy:
    return delivery.Policy.from_settings(settings)


def drain(sessions: Any, policy: delivery.Policy, rounds: int = 20) -> list[str]:
    """Run the sweep and every delivery it hands out until nothing is due (what the
    scheduler and the workers do); the outcomes in order."""
    outcomes: list[str] = []
    for _ in range(rounds):
        ids = delivery.due(sessions, policy)
        if not ids:
            break
        outcomes.extend(delivery.deliver(sessions, policy, i).status for i in ids)
    return outcomes
