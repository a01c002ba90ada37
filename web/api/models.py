"""``/v1/models``: the model catalog with prices, and where each model runs here.

The pages read the same catalog's names for people (job types, presets, models, the job
first offered per kind of file, the model that really runs here) through the template
global ``catalog_labels``.
"""

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
        runs_on = model.provider if policy.catalog.works_here(model, policy.configured) else "local"
        data.append({**model.to_dict(), "runs_on": runs_on})
    return {"object": "list", "data": data}


@blueprint.app_template_global("catalog_labels")
def catalog_labels() -> dict[str, Any]:
    """Names for people beside the machine names, for the job form and the library."""
    policy = services().policy
    return policy.catalog.page_labels(policy.configured)
