"""``/v1/openapi.json``: the OpenAPI 3 document of this API; ``/v1/timeline.schema.json``: the
JSON Schema of a render timeline."""

from __future__ import annotations

from typing import Any

from pipelines import timeline
from web.api import blueprint
from web.openapi_doc import build


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return build()


@blueprint.get("/timeline.schema.json")
def timeline_schema() -> Any:
    """The JSON Schema of a `video.render` timeline (docs/timeline.md), for programs that write
    their own timelines."""
    return timeline.document()
