"""Deliveries over HTTPS go to the one address the name was resolved to and checked against,
and the receiver's certificate is verified for the name in the URL (SNI), not for the
address: a receiver on loopback with a certificate for ``hooks.test``, signed by a test
authority the client is told to trust."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.webhooks import safehttp

LIMITS = safehttp.Limits(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0, allow_loopback=True)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test certificate authority and a certificate it signed for ``hooks.test``."""
    tmp = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "1", "-subj", "/CN=faktry test authority", cwd=tmp)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=hooks.test", cwd=tmp)  # fmt: skip
    (tmp / "san.ext").write_text("subjectAltName=DNS:hooks.test\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "1", "-extfile", "san.ext", cwd=tmp)  # fmt: skip
    return tmp


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.got.append((self.headers.get("Host", ""), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_receiver(authority: Path) -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority / "server.pem", authority / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.got = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def trusting(authority: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client trusts the test authority (as a deployment's trust store would a real one)."""
    context = ssl.create_default_context(cafile=str(authority / "ca.pem"))
    monkeypatch.setattr(safehttp._PinnedTLS, "context", context)


def test_an_https_delivery_goes_to_the_pinned_address_and_verifies_the_name(https_receiver, trusting):
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    answer = safehttp.post(f"https://hooks.test:{https_receiver}/in", b'{"a":1}', {}, LIMITS, resolve)
    assert answer.status == 204
    assert asked == ["hooks.test"]  # resolved once, by name; the connection went to that address
    assert _Receiver.got == [(f"hooks.test:{https_receiver}", b'{"a":1}')]


def test_a_certificate_for_another_name_is_refused(https_receiver, trusting):
    with pytest.raises(ssl.SSLCertVerificationError):
        safehttp.post(
            f"https://other.test:{https_receiver}/in", b"{}", {}, LIMITS, lambda h, p: ["127.0.0.1"]
        )
    assert _Receiver.got == []


def test_an_untrusted_certificate_is_refused(https_receiver):
    with pytest.raises(ssl.SSLCertVerificationError):
        safehttp.post(
            f"https://hooks.test:{https_receiver}/in", b"{}", {}, LIMITS, lambda h, p: ["127.0.0.1"]
        )
    assert _Receiver.got == []


def test_a_name_resolving_to_a_private_address_is_refused_before_any_tls(trusting):
    with pytest.raises(safehttp.Refused):
        safehttp.post("https://hooks.test/in", b"{}", {}, LIMITS, lambda h, p: ["10.1.2.3"])
