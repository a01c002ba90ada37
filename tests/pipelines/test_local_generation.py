"""With no provider keys (the zero-setup default) every generation job type runs offline on
the local provider, with real, probeable outputs; the catalog API says where models run."""

from __future__ import annotations

import shutil

import pytest

from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def run(client, tenant, type_, model, inputs, **params):
    r = client.post(
        "/v1/jobs",
        json={"type": type_, "input": inputs, "params": {"model": model, **params}},
        headers=tenant.headers,
    )
    assert r.status_code == 202, r.json
    assert r.json["provider"] == "local"
    done = wait_for_job(client, tenant, r.json["id"], timeout=60)
    assert done["status"] == "succeeded", done
    return done


def test_the_catalog_lists_models_with_prices_and_where_they_run(client, tenant):
    r = client.get("/v1/models", headers=tenant.headers)
    assert r.status_code == 200
    models = {m["id"]: m for m in r.json["data"]}
    assert {
        "gpt-image-1",
        "flux-2-pro-eu",
        "kling-video-v2.6-pro",
        "veo-3.1",
        "sora-2",
        "ltx-2.3",
        "wan-2.7",
    } <= set(models)
    assert {
        "elevenlabs-multilingual-v2",
        "qwen-3-tts",
        "gemini-tts",
        "elevenlabs-scribe",
        "minimax-music-v2.5",
    } <= set(models)
    assert models["gpt-image-1"]["provider"] == "openai" and models["gpt-image-1"]["runs_on"] == "local"
    assert models["gpt-image-1"]["price"] == {"flat": 1500}
    only_video = client.get("/v1/models?type=video.generate", headers=tenant.headers).json["data"]
    assert all("video.generate" in m["job_types"] for m in only_video)


def test_an_unknown_model_or_parameter_is_a_422_naming_it(client, tenant):
    body = {"type": "image.generate", "input": {"prompt": "x"}, "params": {"model": "gpt-9"}}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "params.model"
    assert "gpt-image-1" in r.json["error"]["known_models"]
    body["params"] = {"model": "gpt-image-1", "steps": 30}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "params.steps"
    body["params"] = {"model": "tts-1"}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "params.model"  # a speech model
    r = client.post(
        "/v1/jobs",
        json={"type": "image.generate", "input": {}, "params": {"model": "gpt-image-1"}},
        headers=tenant.headers,
    )
    assert r.status_code == 422 and r.json["error"]["field"] == "input.prompt"


def test_images_are_drawn_offline(client, tenant, worker, png_image):
    done = run(client, tenant, "image.generate", "gpt-image-1", {"prompt": "a lighthouse"}, size="1024x1536")
    assert (done["outputs"][0]["media"]["width"], done["outputs"][0]["media"]["height"]) == (1024, 1536)
    file_id = upload(client, tenant, png_image).json["id"]
    edited = run(client, tenant, "image.edit", "local-image", {"prompt": "add stars", "file_id": file_id})
    assert edited["outputs"][0]["kind"] == "image"


def test_video_is_composed_offline_from_text_or_an_image(client, tenant, worker, png_image):
    done = run(client, tenant, "video.generate", "kling-video-v2.6-pro", {"prompt": "waves"}, duration="5")
    media = done["outputs"][0]["media"]
    assert media["video_codec"] == "h264" and abs(media["duration"] - 5) < 0.5
    file_id = upload(client, tenant, png_image).json["id"]
    run(client, tenant, "video.generate", "local-video", {"prompt": "moving", "file_id": file_id}, duration=2)


def test_local_speech_transcribes_back_to_its_text(client, tenant, worker):
    text = "Faktry runs offline."
    spoken = run(client, tenant, "speech.synthesize", "local-speech", {"text": text})
    [audio] = spoken["outputs"]
    assert audio["content_type"] == "audio/mpeg"
    expected = "espeak-ng" if shutil.which("espeak-ng") else "tone"
    assert expected in spoken["result"]["note"]
    heard = run(client, tenant, "speech.transcribe", "whisper-1", {"file_id": audio["id"]})
    assert heard["result"]["text"] == text


def test_music_is_synthesized_offline(client, tenant, worker):
    done = run(client, tenant, "music.generate", "minimax-music-v2.5", {"prompt": "calm piano"})
    media = done["outputs"][0]["media"]
    assert media["audio_codec"] == "mp3" and media["duration"] > 1
