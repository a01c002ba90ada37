"""Each stand-in speaks its provider's protocol to the real client: openai, fal_client, requests."""

from __future__ import annotations

import base64
import io
import time
from typing import Any, Literal, cast

import fal_client
import openai
import pytest
import requests
from PIL import Image

from tests.standins import media
from tests.standins.bfl_fake import BFLFake
from tests.standins.fal_fake import FalFake
from tests.standins.openai_fake import OpenAIFake

pytestmark = pytest.mark.usefixtures("require_ffmpeg")

KLING_T2V = "fal-ai/kling-video/v2.1/standard/text-to-video"
KLING_I2V = "fal-ai/kling-video/v2.1/standard/image-to-video"


def client_for(fake: OpenAIFake, **options: Any) -> openai.OpenAI:
    settings: dict[str, Any] = {"max_retries": 2, "timeout": 10.0, **options}
    return openai.OpenAI(api_key="sk-test", base_url=fake.base_url, **settings)


# -- OpenAI -------------------------------------------------------------------------------------


def test_openai_image_generation_returns_a_png_of_the_requested_size(openai_fake: OpenAIFake) -> None:
    result = client_for(openai_fake).images.generate(
        model="gpt-image-1", prompt="a red bicycle", size="1536x1024", quality="low"
    )

    assert result.data
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or "")))
    assert (image.format, image.size) == ("PNG", (1536, 1024))
    assert (result.size, result.quality, result.output_format) == ("1536x1024", "low", "png")
    assert result.usage is not None and result.usage.total_tokens > 0
    [call] = openai_fake.calls
    assert call["json"] == {
        "model": "gpt-image-1",
        "prompt": "a red bicycle",
        "size": "1536x1024",
        "quality": "low",
    }
    assert call["headers"]["authorization"] == "Bearer sk-test"


def test_openai_image_generation_rejects_a_transparent_jpeg(openai_fake: OpenAIFake) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(openai_fake).images.generate(
            model="gpt-image-1", prompt="logo", background="transparent", output_format="jpeg"
        )
    assert caught.value.status_code == 400
    assert caught.value.param == "background"


def test_openai_image_edit_takes_several_images_and_a_mask(openai_fake: OpenAIFake) -> None:
    mask = media.image(64, 48, "png", "", transparent=True)
    result = client_for(openai_fake).images.edit(
        model="gpt-image-1",
        image=[("a.png", media.png(64, 48), "image/png"), ("b.png", media.png(64, 48), "image/png")],
        mask=("mask.png", mask, "image/png"),
        prompt="add a hat",
    )

    assert result.data
    assert Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or ""))).size == (1536, 1024)
    [call] = openai_fake.calls
    assert len(call["files"]["image[]"]) == 2
    assert call["files"]["mask"]["filename"] == "mask.png"
    assert call["form"]["prompt"] == "add a hat"


@pytest.mark.parametrize(("fmt", "format_name"), [("mp3", "mp3"), ("wav", "wav"), ("opus", "ogg")])
def test_openai_speech_returns_real_audio(
    openai_fake: OpenAIFake, fmt: Literal["mp3", "wav", "opus"], format_name: str
) -> None:
    speech = client_for(openai_fake).audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input="Hello there", response_format=fmt
    )

    probe = media.probe(speech.content)
    assert probe["format"]["format_name"] == format_name
    assert float(probe["format"]["duration"]) > 0.5
    assert openai_fake.calls[0]["headers"]["accept"] == "application/octet-stream"


def test_openai_transcribes_the_known_clip_in_every_format(openai_fake: OpenAIFake) -> None:
    client = client_for(openai_fake)
    clip = ("clip.wav", media.speech("wav"), "audio/wav")

    assert client.audio.transcriptions.create(model="whisper-1", file=clip).text == media.SPEECH_TEXT
    assert (
        client.audio.transcriptions.create(model="whisper-1", file=clip, response_format="text")
        == media.SPEECH_TEXT
    )
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=clip,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.duration == pytest.approx(1.0, abs=0.1)
    assert verbose.segments and verbose.segments[0].text == media.SPEECH_TEXT
    assert verbose.words and verbose.words[0].word == "The"
    assert openai_fake.calls[2]["form"]["timestamp_granularities[]"] == ["word", "segment"]


def test_openai_transcription_refuses_text_output_from_gpt_4o_transcribe(openai_fake: OpenAIFake) -> None:
    with pytest.raises(openai.BadRequestError):
        client_for(openai_fake).audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.mp3", media.mp3(), "audio/mpeg"), response_format="text"
        )


def test_openai_moderation_flags_configured_words(openai_fake: OpenAIFake) -> None:
    openai_fake.flag("explode", "violence", "illicit/violent")

    result = client_for(openai_fake).moderations.create(
        model="omni-moderation-latest", input=["a calm lake", "I will find you and explode"]
    )

    calm, threat = result.results
    assert not calm.flagged
    assert threat.flagged
    assert threat.categories.violence and threat.categories.harassment_threatening
    assert threat.categories.illicit_violent and not threat.categories.self_harm
    assert threat.model_dump(by_alias=True)["categories"]["harassment/threatening"] is True
    assert threat.category_applied_input_types.violence == ["text"]


def test_openai_rate_limit_is_retried_after_retry_after_ms(openai_fake: OpenAIFake) -> None:
    openai_fake.fail(429, times=1, retry_after_ms=20)

    started = time.monotonic()
    client_for(openai_fake).moderations.create(input="hello")

    assert time.monotonic() - started < 0.4
    assert [c["status"] for c in openai_fake.calls] == [429, 200]
    assert [c["headers"]["x-stainless-retry-count"] for c in openai_fake.calls] == ["0", "1"]


def test_openai_header_faults_apply_to_the_first_attempts_only(openai_fake: OpenAIFake) -> None:
    client_for(openai_fake).moderations.create(
        input="hello",
        extra_headers={"X-Fake-Fail": "500", "X-Fake-Fail-Count": "1", "X-Fake-Retry-After-Ms": "10"},
    )
    assert [c["status"] for c in openai_fake.calls] == [500, 200]


def test_openai_persistent_rate_limit_raises_after_the_retries(openai_fake: OpenAIFake) -> None:
    openai_fake.fail(429, times=5)
    with pytest.raises(openai.RateLimitError) as caught:
        client_for(openai_fake).moderations.create(input="hello")
    assert caught.value.code == "rate_limit_exceeded"
    assert len(openai_fake.calls) == 3


def test_openai_wrong_key_is_an_authentication_error_and_not_retried(openai_fake: OpenAIFake) -> None:
    client = openai.OpenAI(api_key="sk-wrong-key-1234", base_url=openai_fake.base_url, max_retries=2)
    with pytest.raises(openai.AuthenticationError):
        client.moderations.create(input="hello")
    assert len(openai_fake.calls) == 1


def test_openai_hang_times_out_and_outage_is_a_server_error(openai_fake: OpenAIFake) -> None:
    openai_fake.hang(2.0)
    with pytest.raises(openai.APITimeoutError):
        client_for(openai_fake, timeout=0.3).with_options(max_retries=0).moderations.create(input="hello")

    openai_fake.outage(True)
    with pytest.raises(openai.InternalServerError) as caught:
        client_for(openai_fake).with_options(max_retries=0).moderations.create(input="hello")
    assert caught.value.status_code == 503


# -- fal ----------------------------------------------------------------------------------------


def fal() -> fal_client.SyncClient:
    return fal_client.SyncClient(key="id:secret")


def fal_detail(exc: fal_client.FalClientHTTPError) -> list[dict[str, Any]]:
    """A model error's ``detail`` list (fal_client puts the body's ``detail`` in ``message``)."""
    return cast(list[dict[str, Any]], exc.message)


def test_fal_job_goes_through_the_queue_to_a_real_video(fal_fake: FalFake) -> None:
    fal_fake.queue_polls = 2
    handle = fal().submit(KLING_T2V, {"prompt": "a fox", "duration": "5", "aspect_ratio": "9:16"})

    events = list(handle.iter_events(with_logs=True, interval=0.01))
    result = handle.get(interval=0.01)

    assert [type(e).__name__ for e in events] == ["Queued", "Queued", "InProgress", "Completed"]
    assert [e.position for e in events[:2]] == [1, 0]  # type: ignore[attr-defined]
    assert handle.status_url.endswith(f"/fal-ai/kling-video/requests/{handle.request_id}/status")
    video = result["video"]
    assert (video["content_type"], video["file_name"]) == ("video/mp4", "output.mp4")
    body = requests.get(video["url"], timeout=5)
    assert body.headers["Content-Type"] == "video/mp4"
    assert len(body.content) == video["file_size"]
    probe = media.probe(body.content)
    assert float(probe["format"]["duration"]) == pytest.approx(5.0, abs=0.2)
    assert (probe["streams"][0]["width"], probe["streams"][0]["height"]) == (180, 320)
    assert fal_fake.submits == [(KLING_T2V, {"prompt": "a fox", "duration": "5", "aspect_ratio": "9:16"})]
    assert fal_fake.status_polls == 5


def test_fal_status_and_result_by_request_id(fal_fake: FalFake) -> None:
    client = fal()
    handle = client.submit("fal-ai/veo3.1", {"prompt": "waves", "duration": "4s", "generate_audio": False})

    assert isinstance(client.status("fal-ai/veo3.1", handle.request_id), fal_client.Queued)
    result = client.result("fal-ai/veo3.1", handle.request_id)

    assert result["video"]["file_size"] > 0


def test_fal_cancel_ends_the_request(fal_fake: FalFake) -> None:
    client = fal()
    handle = client.submit(KLING_T2V, {"prompt": "a fox"})

    handle.cancel()

    assert fal_fake.cancels == [handle.request_id]
    assert fal_fake.job(handle.request_id).state == "CANCELLED"
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "request_cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        handle.get(interval=0.01)
    assert (caught.value.status_code, caught.value.error_type) == (400, "request_cancelled")


def test_fal_invalid_input_surfaces_as_a_422_on_the_result(fal_fake: FalFake) -> None:
    handle = fal().submit(KLING_I2V, {"prompt": "move", "duration": 5})

    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        handle.get(interval=0.01)

    assert caught.value.status_code == 422
    details = {tuple(d["loc"]): d["type"] for d in fal_detail(caught.value)}
    assert details == {("body", "image_url"): "missing", ("body", "duration"): "literal_error"}


def test_fal_scripted_failures(fal_fake: FalFake) -> None:
    fal_fake.fail_request("request_timeout")
    with pytest.raises(fal_client.FalClientHTTPError) as timed_out:
        fal().subscribe(KLING_T2V, {"prompt": "a fox"}, interval=0.01)
    assert (timed_out.value.status_code, timed_out.value.error_type) == (504, "request_timeout")

    fal_fake.fail_request("content_policy_violation")
    with pytest.raises(fal_client.FalClientHTTPError) as flagged:
        fal().subscribe(KLING_T2V, {"prompt": "a fox"}, interval=0.01)
    assert flagged.value.status_code == 422
    assert fal_detail(flagged.value)[0]["type"] == "content_policy_violation"


def test_fal_rate_limited_submit_is_retried_and_outage_fails_fast(fal_fake: FalFake) -> None:
    fal_fake.fail_next_submit(429)
    fal().submit(KLING_T2V, {"prompt": "a fox"})
    assert [c["status"] for c in fal_fake.calls] == [429, 200]

    fal_fake.outage(True)
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        fal().submit(KLING_T2V, {"prompt": "a fox"})
    assert (caught.value.status_code, caught.value.error_type) == (503, "runner_scheduling_failure")


def test_fal_wrong_key_is_refused(fal_fake: FalFake) -> None:
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        fal_client.SyncClient(key="id:wrong").submit(KLING_T2V, {"prompt": "a fox"})
    assert caught.value.status_code == 401


def test_fal_speech_round_trip_and_music(fal_fake: FalFake) -> None:
    client = fal()
    speech = client.subscribe("fal-ai/elevenlabs/tts/multilingual-v2", {"text": "Hello"}, interval=0.01)
    assert (
        media.probe(requests.get(speech["audio"]["url"], timeout=5).content)["format"]["format_name"] == "mp3"
    )

    transcript = client.subscribe(
        "fal-ai/elevenlabs/speech-to-text", {"audio_url": speech["audio"]["url"]}, interval=0.01
    )
    assert transcript["text"] == media.SPEECH_TEXT

    music = client.subscribe(
        "fal-ai/minimax-music/v2.5",
        {"prompt": "lofi", "is_instrumental": True, "audio_setting": {"format": "wav"}},
        interval=0.01,
    )
    assert music["audio"]["content_type"] == "audio/wav"

    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        client.subscribe("fal-ai/minimax-music/v2.5", {"prompt": "lofi"}, interval=0.01)
    assert fal_detail(caught.value)[0]["loc"] == ["body", "lyrics"]


def test_fal_upload_then_image_to_video_and_sync_run(fal_fake: FalFake) -> None:
    client = fal()
    image_url = client.upload(media.png(32, 32), "image/png", file_name="start.png")
    assert requests.get(image_url, timeout=5).content == media.png(32, 32)

    result = client.run(KLING_I2V, {"prompt": "move", "image_url": image_url})
    assert result["video"]["url"].startswith(fal_fake.url)

    missing = image_url.replace("/files/", "/files/gone-")
    with pytest.raises(fal_client.FalClientHTTPError) as caught:
        client.subscribe(KLING_I2V, {"prompt": "move", "image_url": missing}, interval=0.01)
    assert fal_detail(caught.value)[0]["type"] == "file_download_error"


# -- BFL ----------------------------------------------------------------------------------------


def bfl_submit(
    base: str, endpoint: str, body: dict[str, Any], key: str = "bfl-test-key"
) -> requests.Response:
    return requests.post(f"{base}/v1/{endpoint}", json=body, headers={"x-key": key}, timeout=5)


def bfl_wait(polling_url: str) -> dict[str, Any]:
    for _ in range(20):
        body: dict[str, Any] = requests.get(polling_url, headers={"x-key": "bfl-test-key"}, timeout=5).json()
        if body["status"] != "Pending":
            return body
    raise AssertionError("still pending")


def test_bfl_task_polls_to_a_ready_sample(bfl_fake: BFLFake) -> None:
    submitted = bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "a cat", "width": 320, "height": 240})
    assert submitted.status_code == 200
    task = submitted.json()
    assert set(task) == {"id", "polling_url", "cost", "input_mp", "output_mp"}

    pending = requests.get(task["polling_url"], headers={"x-key": "bfl-test-key"}, timeout=5).json()
    ready = bfl_wait(task["polling_url"])

    assert pending["status"] == "Pending" and 0 < pending["progress"] < 1
    assert ready["status"] == "Ready" and ready["progress"] is None
    sample = requests.get(ready["result"]["sample"], timeout=5)
    assert sample.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(sample.content)).size == (320, 240)


def test_bfl_eu_base_is_recorded_and_polls_an_eu_cluster(bfl_fake: BFLFake) -> None:
    task = bfl_submit(bfl_fake.eu_url, "flux-kontext-pro", {"prompt": "a cat", "aspect_ratio": "16:9"}).json()
    ready = bfl_wait(task["polling_url"])

    assert "/eu1/v1/get_result?id=" in task["polling_url"]
    assert [c["region"] for c in bfl_fake.calls] == ["eu", "eu1", "eu1"]
    assert requests.get(ready["result"]["sample"], timeout=5).headers["Content-Type"] == "image/png"


def test_bfl_validation_and_auth_errors(bfl_fake: BFLFake) -> None:
    invalid = bfl_submit(bfl_fake.url, "flux-2-pro", {"width": 1000, "height": 512})
    assert invalid.status_code == 422
    assert [d["loc"] for d in invalid.json()["detail"]] == [["body", "prompt"]]
    odd = bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "x", "width": 1000, "height": 512})
    assert odd.status_code == 422 and odd.json()["detail"][0]["loc"] == ["body", "width"]
    assert bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "x"}, key="nope").status_code == 401


def test_bfl_rate_limit_outage_and_moderation(bfl_fake: BFLFake) -> None:
    bfl_fake.fail(429, retry_after=2)
    limited = bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "x"})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")

    bfl_fake.finish_with("Request Moderated")
    moderated = bfl_wait(bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "x"}).json()["polling_url"])
    assert (moderated["status"], moderated["result"]) == ("Request Moderated", None)

    unknown = requests.get(
        f"{bfl_fake.url}/us1/v1/get_result?id=nope", headers={"x-key": "bfl-test-key"}, timeout=5
    )
    assert unknown.json()["status"] == "Task not found"

    bfl_fake.outage(True)
    assert bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "x"}).status_code == 503


def test_bfl_sample_urls_expire(bfl_fake: BFLFake) -> None:
    ready = bfl_wait(
        bfl_submit(bfl_fake.url, "flux-2-pro", {"prompt": "x", "width": 64, "height": 64}).json()[
            "polling_url"
        ]
    )
    bfl_fake.expire_samples()
    assert requests.get(ready["result"]["sample"], timeout=5).status_code == 403
