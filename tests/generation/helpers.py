"""Driving generation jobs in tests."""

from __future__ import annotations

from typing import Any


def generate(client: Any, tenant: Any, type_: str, model: str, inputs: dict[str, Any], **params: Any) -> Any:
    return client.post(
        "/v1/jobs",
        json={"type": type_, "input": inputs, "params": {"model": model, **params}},
        headers=tenant.headers,
    )


def content(client: Any, tenant: Any, output: dict[str, Any]) -> bytes:
    r = client.get(output["url"], headers=tenant.headers)
    assert r.status_code == 200, r.status_code
    return bytes(r.data)
