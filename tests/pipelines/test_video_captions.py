"""``video.captions`` burns a transcript's subtitles into a 9:16 video; ``speech.transcribe``
writes those subtitles as WebVTT. Real jobs on a real worker: speech made by the offline model,
transcribed by the offline model, captioned with ffmpeg and libass."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pipelines.media import subtitles
from tests.web.helpers import upload, wait_for_job

TEXT = "Faktry workflows turn a podcast into a clip with captions for phones."


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def _run(client, tenant, body):
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 202, r.json
    done = wait_for_job(client, tenant, r.json["id"], timeout=90)
    assert done["status"] == "succeeded", done
    return done


def _transcript(client, tenant) -> tuple[dict, dict]:
    """Speech of `TEXT` by the offline model, and its transcription's WebVTT output."""
    spoken = _run(
        client,
        tenant,
        {"type": "speech.synthesize", "input": {"text": TEXT}, "params": {"model": "local-speech"}},
    )
    [audio] = spoken["outputs"]
    heard = _run(
        client,
        tenant,
        {
            "type": "speech.transcribe",
            "input": {"file_id": audio["id"]},
            "params": {"model": "local-transcribe"},
        },
    )
    [vtt] = heard["outputs"]
    return audio, vtt


def _frame(path: Path, at: float, out: Path) -> Image.Image:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-ss", str(at), "-i", str(path), "-frames:v", "1", str(out)],
        check=True,
        timeout=30,
    )
    return Image.open(out).convert("L")


def _bright(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels that are nearly white in the box (captions are white)."""
    return sum(1 for value in image.crop(box).tobytes() if value > 235)


def _download(client, tenant, file_id: str, target: Path) -> Path:
    r = client.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert r.status_code == 200
    target.write_bytes(r.data)
    return target


def test_a_transcription_writes_its_text_as_webvtt_timed_over_the_audio(client, tenant, worker):
    audio, vtt = _transcript(client, tenant)
    assert vtt["kind"] == "subtitles" and vtt["content_type"] == "text/vtt" and vtt["name"] == "subtitles"
    text = client.get(f"/v1/files/{vtt['id']}/content", headers=tenant.headers).get_data(as_text=True)
    assert text.startswith("WEBVTT")
    cues = subtitles.parse(text)
    assert " ".join(c.text for c in cues) == TEXT
    assert all(len(c.text) <= subtitles.CUE_CHARS for c in cues)
    assert cues[0].start == 0 and all(a.end == b.start for a, b in itertools.pairwise(cues))
    assert cues[-1].end == pytest.approx(audio["media"]["duration"], abs=0.01)


def test_captions_of_a_real_transcript_are_burned_into_a_9_16_video_of_the_audio(
    client, tenant, worker, tmp_path
):
    audio, vtt = _transcript(client, tenant)
    body = {
        "type": "video.captions",
        "input": {"file_id": audio["id"], "subtitles_file_id": vtt["id"]},
        "params": {"height": 640},
    }
    done = _run(client, tenant, body)
    [video] = done["outputs"]
    media = video["media"]
    assert (media["width"], media["height"]) == (360, 640) and media["video_codec"] == "h264"
    assert media["audio_codec"] == "aac"
    assert media["duration"] == pytest.approx(audio["media"]["duration"], abs=0.2)
    assert done["result"]["cues"] >= 2
    assert done["cost"]["charged"] == 200  # under a minute: the minimum
    path = _download(client, tenant, video["id"], tmp_path / "clip.mp4")
    frame = _frame(path, 0.3, tmp_path / "frame.png")
    # White text in the lower part of the frame, nothing bright above it.
    assert _bright(frame, (0, 400, 360, 640)) > 150
    assert _bright(frame, (0, 0, 360, 300)) == 0


@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_captions_crop_or_pad_a_landscape_video_to_portrait(client, tenant, worker, clip_720p, tmp_path, fit):
    _, vtt = _transcript(client, tenant)
    source = upload(client, tenant, clip_720p).json["id"]
    body = {
        "type": "video.captions",
        "input": {"file_id": source, "subtitles_file_id": vtt["id"]},
        "params": {"height": 640, "fit": fit, "position": "top"},
    }
    [video] = _run(client, tenant, body)["outputs"]
    assert (video["media"]["width"], video["media"]["height"]) == (360, 640)
    frame = _frame(_download(client, tenant, video["id"], tmp_path / "v.mp4"), 0.5, tmp_path / "f.png")
    if fit == "pad":
        # A 16:9 picture fits 360 wide: black bars above and below it.
        assert max(frame.crop((0, 560, 360, 640)).tobytes()) < 20
    else:
        assert max(frame.crop((0, 560, 360, 640)).tobytes()) > 20
    assert _bright(frame, (0, 0, 360, 200)) > 100  # the captions, at the top


def test_captions_take_only_subtitles_and_media(client, tenant, png_image, clip_small):
    image = upload(client, tenant, png_image).json["id"]
    video = upload(client, tenant, clip_small).json["id"]
    body = {"type": "video.captions", "input": {"file_id": video, "subtitles_file_id": image}}
    r = client.post("/v1/jobs", json=body, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "unsupported_input"
    assert r.json["error"]["field"] == "input.subtitles_file_id"
    r = client.post("/v1/jobs", json={**body, "params": {"height": 720}}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "params.height"


def test_cue_text_can_style_nothing_in_the_burned_script():
    cues = subtitles.timed("a {\\fs300\\c&H0000FF&} <b>b</b> --> c", 3.0)
    vtt = subtitles.to_vtt(cues)
    text_line = vtt.splitlines()[4]
    assert "<b>" not in vtt and "&lt;b&gt;" in text_line and "-->" not in text_line
    assert subtitles.parse(vtt)[0].text.startswith("a {\\fs300")
    script = subtitles.to_ass(subtitles.parse(vtt), width=360, height=640, font_size=32)
    dialogue = [line for line in script.splitlines() if line.startswith("Dialogue:")]
    assert dialogue and not any("{" in line or "\\" in line for line in dialogue)


def test_timed_segments_from_a_provider_time_the_cues():
    cues = subtitles.timed(
        "ignored", 9.0, [{"start": 0.5, "end": 2.0, "text": " hello "}, {"start": 2, "end": 4, "text": "you"}]
    )
    assert cues == [subtitles.Cue(0.5, 2.0, "hello"), subtitles.Cue(2.0, 4.0, "you")]
    assert subtitles.timed("", 3.0) == []
    srt = "1\n00:00:01,000 --> 00:00:02,500\nfrom srt\n\n"
    assert subtitles.parse(srt) == [subtitles.Cue(1.0, 2.5, "from srt")]
