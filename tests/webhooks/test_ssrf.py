"""Deliveries never reach inside: internal addresses are refused before any connection,
by literal address, by what a host name resolves to, and behind a redirect."""

from __future__ import annotations

import pytest

from pipelines.webhooks import safehttp
from tests.webhooks.conftest import drain

STRICT = safehttp.Limits(connect_timeout=1.0, read_timeout=1.0, total_timeout=2.0)


def resolver(table: dict[str, list[str]]) -> safehttp.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def never(host: str, port: int) -> list[str]:
    raise AssertionError("a literal address needs no resolving")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_internal_addresses_are_refused_without_connecting(url):
    with pytest.raises(safehttp.Refused) as refused:
        safehttp.post(url, b"{}", {}, STRICT, never)
    assert refused.value.code == "blocked_address"


def test_a_host_name_resolving_to_a_private_address_is_refused():
    resolve = resolver({"hooks.example.com": ["203.0.113.7", "10.0.0.5"], "rebind.example": ["::1"]})
    for url in ("https://hooks.example.com/x", "http://rebind.example/x"):
        with pytest.raises(safehttp.Refused) as refused:
            safehttp.post(url, b"{}", {}, STRICT, resolve)
        assert refused.value.code == "blocked_address"


def test_urls_with_credentials_or_other_schemes_are_refused():
    for url in ("ftp://example.com/x", "http://user:pw@example.com/x", "file:///etc/passwd", "http:///x"):
        with pytest.raises(safehttp.Refused) as refused:
            safehttp.post(url, b"{}", {}, STRICT, never)
        assert refused.value.code == "bad_url"


def test_loopback_is_allowed_only_by_the_setting(receiver):
    with pytest.raises(safehttp.Refused):
        safehttp.post(receiver.url, b"{}", {}, STRICT)
    answer = safehttp.post(receiver.url, b"{}", {}, safehttp.Limits(allow_loopback=True))
    assert answer.status == 200 and len(receiver.got) == 1


def test_saving_an_internal_url_is_a_422(client, tenant):
    # (loopback is allowed in these tests; the client tests above refuse it without the setting)
    for url in ("http://169.254.169.254/", "http://10.0.0.1/x", "http://[fc00::1]/x", "gopher://x.example/"):
        r = client.post("/v1/webhook-endpoints", json={"url": url}, headers=tenant.headers)
        assert r.status_code == 422 and r.json["error"]["field"] == "url"


def test_a_redirect_to_a_private_address_is_not_followed(client, tenant, receiver, sessions, policy):
    receiver.script = [("redirect", "http://10.0.0.1/steal"), 200]
    hook = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["retry", "delivered"]
    log = client.get(f"/v1/webhook-endpoints/{hook['id']}/messages", headers=tenant.headers).json["data"]
    assert [a["status_code"] for a in log[0]["log"]] == [302, 200]
    assert len(receiver.got) == 2  # both to the registered URL; nothing went to 10.0.0.1
