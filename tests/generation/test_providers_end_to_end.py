"""Every generation job type end to end: API → queue → worker → real SDK → stand-in → outputs
stored in the tenant's library and probed."""

from __future__ import annotations

import pytest

from faktry.db import transaction
from quotas import ledger
from tests.generation.helpers import generate
from tests.standins import media
from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def studio(make_tenant):
    return make_tenant("studio", credits=500)


def run(client, tenant, type_, model, inputs, **params):
    r = generate(client, tenant, type_, model, inputs, **params)
    assert r.status_code == 202, r.json
    done = wait_for_job(client, tenant, r.json["id"], timeout=60)
    assert done["status"] == "succeeded", done
    return done


def test_openai_image_generation_stores_a_probed_png(client, studio, worker, openai_fake):
    done = run(
        client, studio, "image.generate", "gpt-image-1", {"prompt": "a lighthouse at dawn"}, size="1024x1536"
    )
    [out] = done["outputs"]
    assert out["content_type"] == "image/png" and (out["media"]["width"], out["media"]["height"]) == (
        1024,
        1536,
    )
    assert done["provider"] == "openai" and done["model"] == "gpt-image-1"
    [call] = openai_fake.calls_to("/v1/images/generations")
    assert call["json"]["prompt"] == "a lighthouse at dawn" and call["json"]["model"] == "gpt-image-1"
    assert done["cost"]["charged"] == done["cost"]["held"] == 1500


def test_openai_image_edit_sends_the_tenants_image(client, studio, worker, openai_fake, png_image):
    file_id = upload(client, studio, png_image).json["id"]
    done = run(client, studio, "image.edit", "gpt-image-1", {"prompt": "add a moon", "file_id": file_id})
    assert done["outputs"][0]["kind"] == "image"
    [call] = openai_fake.calls_to("/v1/images/edits")
    assert call["form"]["prompt"] == "add a moon"


def test_bfl_flux_generation_polls_and_downloads_the_sample(client, studio, worker, bfl_fake):
    done = run(client, studio, "image.generate", "flux-2-pro", {"prompt": "a red fox"}, width=512, height=512)
    assert done["outputs"][0]["media"]["width"] == 512
    assert [c["region"] for c in bfl_fake.calls if c["method"] == "POST"] == ["global"]
    assert len(bfl_fake.polls) >= 1


def test_the_eu_hosted_flux_model_goes_to_the_eu_endpoint(client, studio, worker, bfl_fake):
    run(client, studio, "image.generate", "flux-2-pro-eu", {"prompt": "a castle"}, width=256, height=256)
    assert [c["region"] for c in bfl_fake.calls if c["method"] == "POST"] == ["eu"]


def test_bfl_image_edit_sends_the_image_inline(client, studio, worker, bfl_fake, png_image):
    file_id = upload(client, studio, png_image).json["id"]
    run(client, studio, "image.edit", "flux-2-pro", {"prompt": "make it blue", "file_id": file_id})
    [submit] = [c for c in bfl_fake.calls if c["method"] == "POST"]
    assert submit["json"]["input_image"]


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("kling-video-v2.6-pro", {"duration": "5"}),
        ("veo-3.1", {"duration": "4s"}),
        ("ltx-2.3", {"duration": 6}),
        ("wan-2.7", {"duration": 2}),
        ("sora-2", {"duration": "4"}),
    ],
)
def test_fal_text_to_video_models_run_through_the_queue(client, studio, worker, fal_fake, model, params):
    done = run(client, studio, "video.generate", model, {"prompt": "waves on a beach"}, **params)
    [out] = done["outputs"]
    assert out["content_type"] == "video/mp4" and out["media"]["video_codec"] == "h264"
    assert len(fal_fake.submits) == 1
    assert done["upstream"]["status"] in ("IN_QUEUE", "IN_PROGRESS", "SUBMITTED")


def test_fal_image_to_video_uploads_the_start_image(client, studio, worker, fal_fake, png_image):
    file_id = upload(client, studio, png_image).json["id"]
    run(client, studio, "video.generate", "kling-video-v2.6-pro", {"prompt": "it moves", "file_id": file_id})
    [(endpoint, args)] = fal_fake.submits
    assert endpoint == "fal-ai/kling-video/v2.6/pro/image-to-video"
    assert args["start_image_url"].startswith(fal_fake.url) and "aspect_ratio" not in args


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("tts-1", {"voice": "nova"}),
        ("gpt-4o-mini-tts", {"instructions": "calm"}),
        ("elevenlabs-multilingual-v2", {}),
        ("qwen-3-tts", {"voice": "Serena"}),
        ("gemini-tts", {}),
    ],
)
def test_speech_synthesis_stores_probeable_audio(client, studio, worker, model, params):
    done = run(client, studio, "speech.synthesize", model, {"text": "Hello from faktry."}, **params)
    [out] = done["outputs"]
    assert out["kind"] == "audio" and out["media"]["audio_codec"]
    assert done["cost"]["charged"] > 0


@pytest.mark.parametrize("model", ["whisper-1", "elevenlabs-scribe"])
def test_transcription_of_the_known_clip(client, studio, worker, tmp_path, model):
    clip = tmp_path / "speech.wav"
    clip.write_bytes(media.speech("wav"))
    file_id = upload(client, studio, clip).json["id"]
    done = run(client, studio, "speech.transcribe", model, {"file_id": file_id})
    assert done["result"]["text"].strip().rstrip(".").lower() == media.SPEECH_TEXT.rstrip(".").lower()
    # The text is also kept as WebVTT subtitles (for video.captions).
    [subtitles] = done["outputs"]
    assert subtitles["kind"] == "subtitles" and subtitles["content_type"] == "text/vtt"


def test_music_generation(client, studio, worker, fal_fake):
    done = run(
        client, studio, "music.generate", "minimax-music-v2.5",
        {"prompt": "upbeat synth pop", "lyrics": "[Verse]\\nla la la"},
    )  # fmt: skip
    assert done["outputs"][0]["kind"] == "audio"
    [(_, args)] = fal_fake.submits
    assert args["lyrics"].startswith("[Verse]")


def test_the_ledger_is_exact_after_generation(client, studio, worker, runtime):
    run(client, studio, "image.generate", "gpt-image-1-mini", {"prompt": "a cat"})
    with transaction(runtime.context.sessions) as s:
        assert ledger.check(s) == []
        funds = ledger.balance(s, studio.id)
    assert funds.available == 500_000 - 500 and funds.held == 0
