"""Request bodies of the JSON endpoints: one JSON object, with only the fields the endpoint
takes. A field the endpoint does not know is refused (``422 unknown_field``), the same way
the OpenAPI document describes each body with ``additionalProperties: false``: a typo in an
optional field must not be silently ignored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import request

from faktry.errors import ValidationError


def json_object(allowed: Iterable[str] | None = None, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. With ``allowed``, any other top-level field is refused.
    With ``optional``, no body at all is the empty object.

    The body's size was checked, and the body read, before the view ran (web/guard.py)."""
    if optional and not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("send a JSON object with Content-Type: application/json", field="body")
    if allowed is not None:
        known = set(allowed)
        unknown = sorted(name for name in body if name not in known)
        if unknown:
            takes = ", ".join(sorted(known)) or "no fields"
            raise ValidationError(
                f"unknown field {unknown[0]!r}; this endpoint takes: {takes}",
                field=unknown[0],
                code="unknown_field",
            )
    return body
