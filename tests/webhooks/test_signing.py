"""Signatures: the snippet published in docs/webhooks.md verifies real deliveries, with
both secrets during a rotation's overlap and never with a rotated-out secret."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests import services as svc
from tests.webhooks.conftest import drain

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def published_verify() -> Any:
    """The ``verify`` function of the Python snippet in docs/webhooks.md, run as published."""
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert snippet is not None
    scope: dict[str, Any] = {}
    exec(compile(snippet.group(1), str(DOC), "exec"), scope)
    return scope["verify"]


def test_the_published_snippet_verifies_a_delivery_and_refuses_a_tampered_one(
    client, tenant, receiver, sessions, policy
):
    verify = published_verify()
    hook = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    assert hook["secret"].startswith("whsec_")
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["delivered"]
    got = receiver.got[0]
    assert verify(hook["secret"], got.headers, got.body)
    assert not verify(hook["secret"], got.headers, got.body.replace(b"test", b"tost"))
    other = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    assert not verify(other["secret"], got.headers, got.body)


def test_during_a_rotation_both_secrets_sign_and_afterwards_the_old_one_fails(
    client, tenant, receiver, sessions, policy
):
    verify = published_verify()
    hook = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    old = hook["secret"]
    base = f"/v1/webhook-endpoints/{hook['id']}"
    rotated = client.post(f"{base}/rotate-secret", json={"overlap_seconds": 3600}, headers=tenant.headers)
    assert rotated.status_code == 200 and rotated.json["previous_secret"] == old
    new = rotated.json["secret"]
    client.post(f"{base}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["delivered"]
    during = receiver.got[-1]
    assert len(during.headers["webhook-signature"].split()) == 2
    assert verify(old, during.headers, during.body) and verify(new, during.headers, during.body)

    client.post(f"{base}/rotate-secret", json={"overlap_seconds": 0}, headers=tenant.headers)
    newest = client.get(f"{base}/secret", headers=tenant.headers).json
    assert newest["previous_secret"] is None
    client.post(f"{base}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["delivered"]
    after = receiver.got[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    assert verify(newest["secret"], after.headers, after.body)
    assert not verify(new, after.headers, after.body) and not verify(old, after.headers, after.body)


def test_the_published_javascript_snippet_verifies_a_delivery_too(
    client, tenant, receiver, sessions, policy, tmp_path
):
    node = shutil.which("node")
    if node is None:
        svc.missing("Node.js")
    snippet = re.search(r"```javascript\n(.*?)```", DOC.read_text(), re.S)
    assert snippet is not None
    script = tmp_path / "verify.js"
    script.write_text(
        snippet.group(1)
        + "\nconst [secret, headers, body] = process.argv.slice(2);\n"
        + "console.log(verify(secret, JSON.parse(headers), Buffer.from(body, 'base64')));\n"
    )
    hook = client.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=tenant.headers).json
    client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=tenant.headers)
    assert drain(sessions, policy) == ["delivered"]
    got = receiver.got[0]

    def verdict(secret: str, body: bytes) -> str:
        args = [node, str(script), secret, json.dumps(got.headers), base64.b64encode(body).decode()]
        return subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    assert verdict(hook["secret"], got.body) == "true"
    assert verdict(hook["secret"], got.body + b" ") == "false"
