"""The OpenAPI document (filled in with every route's schemas)."""

from __future__ import annotations

from typing import Any


def build() -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "faktry", "version": "1"}, "paths": {}}
