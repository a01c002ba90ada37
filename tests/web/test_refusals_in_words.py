"""A refused job says what is wrong in words after the field's path, never in JSON Schema's
own text, with the field and a stable code; the pages show the same sentence by the field."""

from __future__ import annotations

import pytest

from tests.web.helpers import upload


@pytest.fixture
def video(client, tenant, clip_small) -> str:
    return upload(client, tenant, clip_small).json["id"]


@pytest.mark.parametrize(
    ("params", "field", "code", "message"),
    [
        ({"at_seconds": 1, "at_fraction": 0.5}, "params.at_seconds", "conflicting_fields",
         "give at_seconds or at_fraction, not both"),
        ({"width": 8}, "params.width", "invalid_request", "params.width must be at least 16"),
        ({"width": "wide"}, "params.width", "invalid_request", "params.width must be a whole number"),
        ({"format": "bmp"}, "params.format", "invalid_request", "params.format must be one of: "),
    ],
)  # fmt: skip
def test_a_refused_job_says_what_is_wrong_in_words(client, tenant, video, params, field, code, message):
    r = client.post(
        "/v1/jobs", json={"type": "video.thumbnail", "input": {"file_id": video}, "params": params},
        headers=tenant.headers,
    )  # fmt: skip
    assert r.status_code == 422, r.json
    error = r.json["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"].startswith(message)
    assert "{" not in error["message"] and "should" not in error["message"]
    assert client.get("/v1/account", headers=tenant.headers).json["credits"]["held"] == 0
