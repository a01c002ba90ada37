"""``/v1/openapi.json``: the OpenAPI 3 document of this API."""

from __future__ import annotations

from typing import Any

from web.api import blueprint
from web.openapi_doc import build


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return build()
