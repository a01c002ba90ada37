"""A job's params and input are checked with validators built once per schema: a catalog
model's params schema and a job type's input schema are built once, and so is each one's
validator, so a submit's checks build nothing."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from faktry.errors import ValidationError
from pipelines import jobtypes
from pipelines.catalog import default_catalog


def test_checks_reuse_one_validator_per_schema(monkeypatch):
    built = []

    def counting(schema):
        built.append(schema)
        return Draft202012Validator(schema)

    monkeypatch.setattr(jobtypes, "Draft202012Validator", counting)
    monkeypatch.setattr(jobtypes, "_VALIDATORS", {})
    resize = jobtypes.JOB_TYPES["image.resize"]
    for _ in range(3):
        assert resize.validate({"width": 8, "height": 8})["width"] == 8
        assert resize.validate_input({"file_id": "fil_x"}) == {"file_id": "fil_x"}
    catalog = default_catalog()
    model = next(m for m in catalog.models.values() if "image.generate" in m.job_types)
    generate = jobtypes.JOB_TYPES["image.generate"]
    for _ in range(3):
        generate.validate({"model": model.id}, model.params_schema)
    assert model.params_schema is model.params_schema
    assert resize.checked_inputs is resize.checked_inputs
    # One validator each: resize's params, its input, the model's params.
    assert len(built) == 3
    # A refusal still names its field.
    with pytest.raises(ValidationError) as refused:
        resize.validate({"width": -1, "height": 8})
    assert refused.value.field.startswith("params.width")
    assert len(built) == 3
