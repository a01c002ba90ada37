"""Examples for the OpenAPI document: every operation gets a request (a curl command and a
Python one, under ``x-codeSamples``, which the reference at ``/docs`` shows), its JSON body
when it takes one, and an answer for each success status.

Bodies and answers are drawn from the schemas themselves (a property's ``examples``, its
``const``, its first ``enum`` value, a well-formed id or time...), so that an example follows
the schema it illustrates as the schema changes; ``tests/web/test_api_docs.py`` validates
each one against its schema. Where a drawn example would say little (a job submission, a log-in), a
written one in `REQUESTS` or `ANSWERS` replaces it, keyed by ``operationId``.

`add_examples` changes the document in place; `web.openapi_doc.build` calls it once.
"""

from __future__ import annotations

import json
import re
from typing import Any

JSON = "application/json"
MULTIPART = "multipart/form-data"
Schema = dict[str, Any]

EXAMPLE_ID = "0123456789abcdef01234567"
EXAMPLE_TIME = "2026-01-15T09:30:00+00:00"
#: Values for the patterns of the document that are more than an id's prefix.
PATTERNS = {
    "^[0-9a-f]{64}$": "9f2b5c1d0e3a4b6c8d7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d",
    "^#[0-9a-f]{6}$": "#102030",
    "^#[0-9a-fA-F]{6}$": "#102030",
    "^[a-z]{3}$": "eur",
    "^fk_live_[a-z0-9]{8}$": "fk_live_a1b2c3d4",
    "^fk_live_[a-z0-9]{40}$": "fk_live_" + "a1b2c3d4" * 5,
}
SUCCESS = re.compile(r"^2\d\d$")
METHODS = ("get", "put", "post", "patch", "delete")

#: Written request bodies, where a drawn one would not show how the operation is used.
REQUESTS: dict[str, Any] = {
    "submitJob": {
        "type": "video.transcode",
        "input": {"file_id": f"fil_{EXAMPLE_ID}"},
        "params": {"preset": "mp4_480p"},
        "metadata": {"order": "1042"},
    },
    "quoteJob": {
        "type": "video.transcode",
        "input": {"file_id": f"fil_{EXAMPLE_ID}"},
        "params": {"preset": "hls"},
    },
    "submitJobBatch": {
        "jobs": [
            {
                "type": "image.resize",
                "input": {"file_id": f"fil_{EXAMPLE_ID}"},
                "params": {"width": 640, "height": 360},
            },
            {"type": "media.probe", "input": {"file_id": f"fil_{EXAMPLE_ID}"}},
        ]
    },
    "createApiKey": {"name": "nightly export"},
    "signUp": {
        "email": "ada@example.com",
        "password": "correct horse battery staple",
        "confirm_age_16": True,
    },
    "logIn": {"email": "ada@example.com", "password": "correct horse battery staple"},
    "createCheckout": {"pack": "starter"},
    "stripeWebhook": {
        "id": "evt_1QabcDEFghiJKL",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {"id": "cs_test_a1B2c3D4", "object": "checkout.session", "payment_status": "paid"}
        },
    },
    "grantCredits": {"credits": 25, "reason": "Refund for a failed export"},
    "publishToGallery": {"job_id": f"job_{EXAMPLE_ID}", "category": "product", "display_name": "Ada L."},
    "removeGalleryEntry": {"reason": "Depicts a real person without their consent"},
    "deleteAccount": {"password": "correct horse battery staple"},
    "changePassword": {
        "current_password": "correct horse battery staple",
        "new_password": "a longer and newer passphrase",
    },
}

#: Written answers, keyed by ``operationId`` and status.
ANSWERS: dict[tuple[str, str, str], Any] = {
    ("createApiKey", "201", JSON): {
        "id": f"key_{EXAMPLE_ID}",
        "object": "api_key",
        "name": "nightly export",
        "prefix": "fk_live_a1b2c3d4",
        "created_at": EXAMPLE_TIME,
        "last_used_at": None,
        "revoked_at": None,
        "expires_at": None,
        "scopes": ["files:read", "files:write", "jobs:read", "jobs:write"],
        "active": True,
        "key": "fk_live_a1b2c3d4" + "e5f6g7h8" * 4,
    },
    ("getOpenApi", "200", JSON): {
        "openapi": "3.1.0",
        "info": {"title": "faktry", "version": "1"},
        "paths": {},
    },
    ("getTimelineSchema", "200", JSON): {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "faktry timeline",
        "type": "object",
        "properties": {"version": {"const": 1}, "video": {"type": "array"}},
    },
    ("getGalleryEntry", "200", JSON): {
        "object": "gallery_entry",
        "id": f"gal_{EXAMPLE_ID}",
        "kind": "image",
        "content_type": "image/png",
        "media_url": f"/gallery/media/gal_{EXAMPLE_ID}",
        "page_url": f"/gallery/gal_{EXAMPLE_ID}",
        "category": "product",
        "display_name": "Ada L.",
        "prompt": "a red chair in a sunlit room, soft shadows",
        "job_type": "image.generate",
        "model": "gpt-image-1",
        "params": {"size": "1024x1024"},
        "created_at": EXAMPLE_TIME,
    },
    ("exportBrand", "200", "text/markdown"): "# Acme\n\n## Colours\n\n- primary: #102030\n",
    ("listTransactions", "200", "text/csv"): (
        "id,created_at,kind,amount,job_id,memo\n"
        f"txn_{EXAMPLE_ID},{EXAMPLE_TIME},purchase,20000,,Starter pack\n"
    ),
}


# -- drawing an example from a schema ----------------------------------------------------------


def sample(schema: Schema, document: dict[str, Any], name: str = "", depth: int = 0) -> Any:
    """A value valid against ``schema`` (JSON Schema 2020-12 as the document writes it): its
    own ``examples`` first, else one made up from its type and constraints."""
    if depth > 12:
        return None
    if "$ref" in schema:
        return sample(_resolve(schema["$ref"], document), document, name, depth + 1)
    for key in ("examples", "enum"):
        values = [v for v in schema.get(key, []) if v is not None]
        if values:
            return values[0]
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] not in ("", None):
        return schema["default"]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return sample(branches[0], document, name, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            drawn = sample(part, document, name, depth + 1)
            if isinstance(drawn, dict):
                merged.update(drawn)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string" if "pattern" in schema else None
    if kind == "object":
        return {
            key: sample(sub, document, key, depth + 1) for key, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        item = sample(schema.get("items", {}), document, name, depth + 1)
        return [item] * max(1, schema.get("minItems", 1)) if item is not None else []
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return max(low, min(1, schema.get("maximum", 1)))
    if kind == "boolean":
        return True
    return None


def _resolve(ref: str, document: dict[str, Any]) -> Schema:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _string(schema: Schema, name: str) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return EXAMPLE_TIME
    if fmt == "date":
        return EXAMPLE_TIME[:10]
    if fmt == "email":
        return "ada@example.com"
    if fmt in ("uri", "url"):
        return "https://hooks.example.com/faktry"
    pattern = schema.get("pattern", "")
    if pattern in PATTERNS:
        return PATTERNS[pattern]
    prefix = re.match(r"^\^([a-z]{2,8}_)", pattern)
    if prefix:
        return prefix.group(1) + EXAMPLE_ID
    if name == "email":
        return "ada@example.com"
    text = name.replace("_", " ") or "text"
    low, high = schema.get("minLength", 0), schema.get("maxLength", 64)
    return (text * (1 + low // max(1, len(text))))[: max(low, min(high, len(text)))]


# -- the document -----------------------------------------------------------------------------


def add_examples(document: dict[str, Any]) -> None:
    """Put an example request and answer on every operation of ``document``."""
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is not None:
                _add_to_operation(document, path, method, operation)


def _add_to_operation(document: dict[str, Any], path: str, method: str, operation: Schema) -> None:
    op_id = operation["operationId"]
    body: Any = None
    multipart: str | bool = False
    request_body = operation.get("requestBody")
    if request_body is not None:
        content = request_body["content"]
        if JSON in content:
            media = content[JSON]
            body = REQUESTS.get(op_id) or sample(media["schema"], document)
            media["example"] = body
        elif MULTIPART in content:
            multipart = True
        else:  # raw bytes of their own type (a tus PATCH)
            multipart = next(iter(content))
    for status, response in operation["responses"].items():
        if not SUCCESS.match(status) or "$ref" in response:
            continue
        for media_type, media in response.get("content", {}).items():
            written = ANSWERS.get((op_id, status, media_type))
            if written is not None:
                media["example"] = written
            elif media["schema"].get("contentMediaType") is None:  # bytes have no example
                media["example"] = sample(media["schema"], document)
    operation["x-codeSamples"] = [
        {"lang": "Shell", "label": "curl", "source": _curl(path, method, operation, body, multipart)},
        {"lang": "Python", "label": "Python", "source": _python(path, method, operation, body, multipart)},
    ]


def _filled_path(path: str, operation: Schema) -> str:
    """The path with example values for its parameters, and the required query parameters."""
    params = operation.get("parameters", [])
    for p in params:
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", str(sample(p["schema"], {}, p["name"])))
    required = [p for p in params if p["in"] == "query" and p.get("required")]
    query = [f"{p['name']}={sample(p['schema'], {}, p['name'])}" for p in required]
    return path + ("?" + "&".join(query) if query else "")


def _headers(operation: Schema) -> dict[str, str]:
    headers = {}
    if operation.get("security") != []:
        headers["Authorization"] = "Bearer $FAKTRY_KEY"
    for p in operation.get("parameters", []):
        if p["in"] == "header" and p.get("required"):
            headers[p["name"]] = str(sample(p["schema"], {}, p["name"]))
    return headers


def _curl(path: str, method: str, operation: Schema, body: Any, multipart: str | bool) -> str:
    lines = [f'curl -X {method.upper()} "$FAKTRY_URL{_filled_path(path, operation)}"']
    lines += [f'-H "{name}: {value}"' for name, value in _headers(operation).items()]
    if isinstance(multipart, str):
        lines += [f'-H "Content-Type: {multipart}"', "--data-binary @clip.part"]
    elif multipart:
        lines.append('-F "file=@clip.mp4"')
    elif body is not None:
        lines.append('-H "Content-Type: application/json"')
        text = json.dumps(body, indent=2).replace("'", "'\\''")
        lines.append(f"-d '{text}'")
    return " \\\n  ".join(lines)


def _python(path: str, method: str, operation: Schema, body: Any, multipart: str | bool) -> str:
    headers = [
        f"{_literal(name, '')}: "
        + ('f"Bearer {KEY}"' if value == "Bearer $FAKTRY_KEY" else _literal(value, ""))
        for name, value in _headers(operation).items()
    ]
    if isinstance(multipart, str):
        headers.append(f'"Content-Type": {_literal(multipart, "")}')
    args = [f'f"{{URL}}{_filled_path(path, operation)}"']
    if headers:
        args.append("headers={" + ", ".join(headers) + "}")
    if isinstance(multipart, str):
        args.append('data=open("clip.part", "rb")')
    elif multipart:
        args.append('files={"file": open("clip.mp4", "rb")}')
    elif body is not None:
        args.append("json=" + _literal(body, "    "))
    args.append("timeout=30")
    lines = [
        "import os",
        "",
        "import requests",
        "",
        'URL, KEY = os.environ["FAKTRY_URL"], os.environ["FAKTRY_KEY"]'
        if operation.get("security") != []
        else 'URL = os.environ["FAKTRY_URL"]',
        f"answer = requests.{method}(\n    " + ",\n    ".join(args) + ",\n)",
        "answer.raise_for_status()",
    ]
    if _answers_json(operation):
        lines.append("print(answer.json())")
    return "\n".join(lines) + "\n"


def _literal(value: Any, indent: str) -> str:
    """``value`` as Python source, one item a line, as a person would write it."""
    inner = indent + "    "
    if isinstance(value, dict) and value:
        items = [f"{inner}{_literal(key, inner)}: {_literal(item, inner)}," for key, item in value.items()]
        return "{\n" + "\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value:
        return "[\n" + "\n".join(f"{inner}{_literal(item, inner)}," for item in value) + f"\n{indent}]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _answers_json(operation: Schema) -> bool:
    return any(
        JSON in response.get("content", {})
        for status, response in operation["responses"].items()
        if SUCCESS.match(status)
    )
