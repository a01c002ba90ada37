"""``/v1/models``: the model catalog with prices, and where each model runs here."""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.errors import ValidationError
from pipelines.jobtypes import JOB_TYPES
from web import services
from web.api import blueprint
from web.auth import authenticated


@blueprint.get("/models")
@authenticated
def list_models() -> Any:
    policy = services().policy
    job_type = request.args.get("type")
    if job_type is not None and job_type not in JOB_TYPES:
        raise ValidationError(f"unknown job type {job_type!r}", field="type", code="unknown_job_type")
    models = policy.catalog.for_type(job_type) if job_type else list(policy.catalog.models.values())
    data = []
    for model in models:
        runs_on = (
            model.provider if model.provider in policy.configured or model.provider == "local" else "local"
        )
        data.append({**model.to_dict(), "runs_on": runs_on})
    return {"object": "list", "data": data}
