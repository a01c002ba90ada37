"""A real SMTP server on loopback (aiosmtpd) that records what it is sent, or refuses as a
test scripts it, and settings whose mail goes there."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from faktry.config import Settings
from pipelines.mail import sender
from tests.conftest import make_settings

LINK = re.compile(r"https?://\S+")


@dataclass
class Received:
    to: list[str]
    subject: str
    text: str
    html: str
    message_id: str

    def link(self, path: str) -> str:
        """The link to ``path`` in the text body."""
        found = [u for u in LINK.findall(self.text) if path in u]
        assert found, f"no link to {path} in:\n{self.text}"
        return found[0]

    def token(self, path: str) -> str:
        return self.link(path).split("token=", 1)[1]


@dataclass
class Smtp:
    """What the server was sent; ``refuse`` (a reply such as ``451 4.3.0 try later``) makes
    it refuse every message while set."""

    port: int = 0
    refuse: str | None = None
    got: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = mail.get_body(("plain",))
        html = mail.get_body(("html",))
        self.got.append(
            Received(
                to=list(envelope.rcpt_tos),
                subject=str(mail["Subject"]),
                text=text.get_content() if text is not None else "",  # type: ignore[union-attr]
                html=html.get_content() if html is not None else "",  # type: ignore[union-attr]
                message_id=str(mail["Message-ID"]),
            )
        )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.got if address in m.to]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    handler = Smtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


def mail_settings(tmp_path: Path, db_url: str, namespace: str, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mail_smtp_host": "127.0.0.1", "mail_smtp_port": port, "mail_smtp_tls": "none", "mail_timeout": 5.0,
        "mail_retry_schedule": "0,0", "payments_test_mode": True, "base_url": "http://127.0.0.1:8000",
    }  # fmt: skip
    values.update(overrides)
    return make_settings(tmp_path, db_url, namespace, **values)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str, smtp: Smtp) -> Settings:
    """Mail goes to the loopback server, a refused mail is tried again at once (3 attempts
    in all), and the test checkout is on."""
    return mail_settings(tmp_path, db_url, redis_namespace, smtp.port)


@pytest.fixture
def sessions(runtime: Any) -> Any:
    return runtime.context.sessions


def drain(sessions: Any, settings: Settings) -> list[str]:
    """Send every mail due, as the scheduler's sweep and the mail actor would; the outcomes."""
    policy = sender.Policy.from_settings(settings)
    return [
        sender.deliver(sessions, policy, message_id).status for message_id in sender.due(sessions, policy)
    ]
