"""Names for people beside the machine names: every job type, transcode preset and model has
one; the form's default model is one that really runs on this deployment; outputs are named
after their source and job."""

from __future__ import annotations

import json
import re

import pytest

from pipelines.catalog import default_catalog, output_name
from pipelines.jobtypes import JOB_TYPES
from pipelines.media.ffmpeg import PRESETS

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


def test_every_job_type_has_a_human_name_and_a_one_line_summary():
    labels = default_catalog().labels
    assert set(labels.job_types) == set(JOB_TYPES)
    for name, label in labels.job_types.items():
        assert label["name"] and label["name"] != name and "." not in label["name"], name
        assert label["summary"].endswith(".") and "\n" not in label["summary"] and len(label["summary"]) < 100


def test_every_preset_and_model_has_a_human_name():
    catalog = default_catalog()
    assert set(catalog.labels.presets) == set(PRESETS)
    assert all(p["name"] and p["suffix"] for p in catalog.labels.presets.values())
    for model in catalog.models.values():
        assert model.name and model.name != model.id, model.id


def test_every_file_kind_is_offered_a_job_that_takes_it():
    for kind, job_type in default_catalog().labels.default_job.items():
        assert JOB_TYPES[job_type].accepts(kind, {}) or kind in JOB_TYPES[job_type].files.get(
            "subtitles_file_id", ()
        )


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (frozenset(), {"image.generate": "local-image", "speech.synthesize": "local-speech"}),
        (frozenset({"openai"}), {"image.generate": "gpt-image-1", "speech.synthesize": "tts-1"}),
        (frozenset({"fal"}), {"image.generate": "local-image", "video.generate": "kling-video-v2.6-pro"}),
    ],
)
def test_the_default_model_is_one_that_really_runs_here(configured, expected):
    catalog = default_catalog()
    labels = catalog.page_labels(configured)
    for job_type, model_id in expected.items():
        assert labels["default_model"][job_type] == model_id
    for job_type, model_id in labels["default_model"].items():
        assert catalog.works_here(catalog.models[model_id], configured), (job_type, model_id)


def test_models_without_a_key_here_say_they_run_on_the_offline_stand_in(client, tenant):
    data = client.get("/v1/models", headers=tenant.headers).json["data"]
    by_id = {m["id"]: m for m in data}
    # The test deployment has no provider keys: every hosted model runs on the stand-in.
    assert by_id["gpt-image-1"]["runs_on"] == "local" and by_id["gpt-image-1"]["provider"] == "openai"
    assert by_id["local-image"]["runs_on"] == "local"


@pytest.mark.parametrize(
    ("source", "job_type", "params", "output", "extension", "expected"),
    [
        ("clip.mp4", "video.transcode", {"preset": "mp4_480p"}, "media", ".mp4", "clip-480p.mp4"),
        ("clip.mp4", "video.transcode", {"preset": "hls"}, "hls", "", "clip-hls"),
        ("clip.mov", "video.thumbnail", {}, "thumbnail", ".jpg", "clip-thumbnail.jpg"),
        ("clip.mov", "video.thumbnail", {"sprite": True}, "sprite", ".jpg", "clip-thumbnail-sprite.jpg"),
        ("clip.mp4", "video.reframe", {}, "video_9x16", ".mp4", "clip-reframed-9x16.mp4"),
        ("talk.wav", "video.captions", {}, "captions_srt", ".srt", "talk-captions.srt"),
        (
            "My Holiday (1).final.MOV",
            "audio.normalize",
            {},
            "audio",
            ".m4a",
            "My-Holiday-1-final-normalized.m4a",
        ),
        ("../../etc/passwd", "media.probe", {}, "", "", "passwd-facts"),
        (None, "image.generate", {}, "image", ".png", "image.png"),
    ],
)
def test_an_output_is_named_after_its_source_and_job(source, job_type, params, output, extension, expected):
    name = output_name(
        default_catalog().labels,
        source=source,
        job_type=job_type,
        params=params,
        output=output,
        extension=extension,
    )
    assert name == expected
    assert re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)?", name)


def test_the_job_form_page_carries_the_names_and_the_default_model(client, make_tenant):
    person = make_tenant(password=PASSWORD)
    assert client.post("/v1/session", json={"email": person.email, "password": PASSWORD}).status_code == 201
    page = client.get("/jobs/new", headers=HTML).get_data(as_text=True)
    raw = re.search(r'<script type="application/json" id="catalog-labels">(.*?)</script>', page, re.S)
    assert raw is not None
    labels = json.loads(raw.group(1))
    assert labels["job_types"]["video.transcode"]["name"] == "Convert a video"
    assert labels["presets"]["hls"].startswith("HLS")
    assert labels["models"]["gpt-image-1"] == "GPT Image 1"
    assert labels["default_model"]["image.generate"] == "local-image"
    assert labels["default_job"]["video"] == "video.transcode"
