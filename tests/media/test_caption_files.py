"""``video.captions`` writes SRT and WebVTT beside (or instead of) the burned video, and burns
in the style it is given; in a workflow it takes a ``speech.transcribe`` node's transcript of
the video's own audio (the offline model here). Units: SRT text, prices, the activity estimate,
and what the workflow graph says of the new types."""

from __future__ import annotations

import subprocess

import pytest
from PIL import Image, ImageStat

from pipelines.media import activity, subtitles
from pipelines.services import Policy
from pipelines.workflows import graph
from quotas.pricing import PriceList
from tests.media.test_edit_jobs import download, money_is_exact, run
from tests.pipelines.test_workflow_runs import wait_for_run
from tests.web.helpers import upload

TEXT = "Faktry turns one long recording into short clips with captions for phones."


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def _speech(client, tenant) -> dict:
    body = {"type": "speech.synthesize", "input": {"text": TEXT}, "params": {"model": "local-speech"}}
    [audio] = run(client, tenant, body)["outputs"]
    return audio


def _transcript(client, tenant, file_id: str) -> dict:
    body = {
        "type": "speech.transcribe",
        "input": {"file_id": file_id},
        "params": {"model": "local-transcribe"},
    }
    [vtt] = run(client, tenant, body)["outputs"]
    return vtt


def _text(client, tenant, file_id: str) -> str:
    return client.get(f"/v1/files/{file_id}/content", headers=tenant.headers).get_data(as_text=True)


def test_captions_write_srt_and_webvtt_files_without_burning(client, tenant, worker, runtime):
    audio = _speech(client, tenant)
    vtt = _transcript(client, tenant, audio["id"])
    body = {
        "type": "video.captions",
        "input": {"file_id": audio["id"], "subtitles_file_id": vtt["id"]},
        "params": {"burn": False, "formats": ["srt", "vtt"]},
    }
    done = run(client, tenant, body)
    srt, webvtt = done["outputs"]
    assert (srt["name"], srt["kind"], srt["content_type"]) == (
        "captions_srt",
        "subtitles",
        "application/x-subrip",
    )
    assert (webvtt["name"], webvtt["content_type"]) == ("captions_vtt", "text/vtt")
    srt_text = _text(client, tenant, srt["id"])
    assert srt_text.startswith("1\n00:00:00,000 --> ")
    cues = subtitles.parse(srt_text)
    assert " ".join(c.text for c in cues) == TEXT
    assert cues == subtitles.parse(_text(client, tenant, webvtt["id"]))
    assert cues[-1].end == pytest.approx(audio["media"]["duration"], abs=0.01)
    assert done["cost"]["charged"] == 100  # files only: the flat price
    money_is_exact(runtime)


def test_burned_captions_take_the_given_font_size_and_colours(client, tenant, worker, runtime, tmp_path):
    audio = _speech(client, tenant)
    vtt = _transcript(client, tenant, audio["id"])
    body = {
        "type": "video.captions",
        "input": {"file_id": audio["id"], "subtitles_file_id": vtt["id"]},
        "params": {
            "height": 640, "formats": ["srt"], "font_family": "DejaVu Serif", "font_size": 40,
            "text_color": "#FF2020", "outline_color": "#2020FF",
        },
    }  # fmt: skip
    video, srt = run(client, tenant, body)["outputs"]
    assert video["kind"] == "video" and srt["kind"] == "subtitles"
    path = download(client, tenant, video["id"], tmp_path / "c.mp4")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-ss", "0.5", "-i", str(path), "-frames:v", "1", str(tmp_path / "f.png")],
        check=True, timeout=30,
    )  # fmt: skip
    picture = Image.open(tmp_path / "f.png").convert("RGB")
    pixels = list(zip(*(band.tobytes() for band in picture.crop((0, 380, 360, 640)).split()), strict=True))
    reds = sum(1 for r, g, b in pixels if r > 180 and g < 90 and b < 90)
    blues = sum(1 for r, g, b in pixels if b > 150 and r < 90 and g < 90)
    assert reds > 100 and blues > 100
    assert max(ImageStat.Stat(picture.crop((0, 0, 360, 250))).extrema[0]) < 60  # nothing above
    money_is_exact(runtime)


def test_caption_refusals(client, tenant, worker, runtime):
    audio = _speech(client, tenant)
    vtt = _transcript(client, tenant, audio["id"])
    files = {"file_id": audio["id"], "subtitles_file_id": vtt["id"]}
    for params, field, code in [
        ({"burn": False}, "params.formats", "nothing_to_write"),
        ({"formats": ["ass"]}, "params.formats.0", "invalid_request"),
        ({"text_color": "red"}, "params.text_color", "invalid_request"),
        ({"font_family": "Evil,Font"}, "params.font_family", "invalid_request"),
    ]:
        r = client.post(
            "/v1/jobs",
            json={"type": "video.captions", "input": files, "params": params},
            headers=tenant.headers,
        )
        assert r.status_code == 422 and (r.json["error"]["field"], r.json["error"]["code"]) == (field, code)


def test_a_workflow_captions_a_video_from_its_own_audio_on_the_offline_models(
    client, tenant, worker, runtime, clip_small, tmp_path
):
    """transcribe (local-transcribe) -> captions as SRT and WebVTT, burned into the video; the
    video's audio here is the offline speech model's, which the offline transcriber can read."""
    audio = _speech(client, tenant)
    source = tmp_path / "talk.mp4"
    local = download(client, tenant, audio["id"], tmp_path / "talk.mp3")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-i", str(local),
         "-map", "0:v", "-map", "1:a", "-map_metadata", "1", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(source)],
        check=True, timeout=60,
    )  # fmt: skip
    video = upload(client, tenant, source).json["id"]
    flow = {
        "inputs": {"source": {"kind": "video"}},
        "nodes": {
            "words": {"type": "speech.transcribe", "params": {"model": "local-transcribe"},
                      "input": {"file_id": {"input": "source"}}},
            "clip": {"type": "video.captions", "params": {"height": 640, "formats": ["srt", "vtt"]},
                     "input": {"file_id": {"input": "source"}, "subtitles_file_id": {"node": "words", "output": 0}}},
            "probe": {"type": "media.probe", "input": {"file_id": {"node": "clip", "output": 0}}},
        },
    }  # fmt: skip
    r = client.post(
        "/v1/workflow-runs", json={"graph": flow, "inputs": {"source": video}}, headers=tenant.headers
    )
    assert r.status_code == 202, r.json
    body = wait_for_run(client, tenant, r.json["id"])
    assert body["status"] == "succeeded", body
    [step] = body["nodes"]["clip"]["steps"]
    video_id, srt_id, vtt_id = step["outputs"]
    probed = body["nodes"]["probe"]["steps"][0]
    assert probed["status"] == "succeeded" and video_id
    cues = subtitles.parse(_text(client, tenant, srt_id))
    assert " ".join(c.text for c in cues) == TEXT
    assert cues == subtitles.parse(_text(client, tenant, vtt_id))
    money_is_exact(runtime)


# -- units ---------------------------------------------------------------------------------------


def test_srt_text_cannot_fake_timing_or_markup():
    cues = [subtitles.Cue(0.0, 1.5, "a --> b <i>c</i>"), subtitles.Cue(61.25, 3723.5, "d")]
    text = subtitles.to_srt(cues)
    assert text.splitlines()[:3] == ["1", "00:00:00,000 --> 00:00:01,500", "a - b ic/i"]
    assert "00:01:01,250 --> 01:02:03,500" in text
    assert subtitles.ass_color("#12AB9f") == "&H009FAB12"


def test_prices_of_the_editing_types():
    prices = PriceList()
    minute = {"duration": 60.0}
    assert prices.estimate("video.reframe", {"aspects": ["9:16"]}, minute) == 1000
    assert prices.estimate("video.reframe", {"aspects": ["9:16", "1:1", "16:9"]}, minute) == 3000
    assert (
        prices.actual("video.reframe", {"aspects": ["9:16", "1:1"]}, minute, [{"duration": 30.0}] * 2) == 1000
    )
    assert prices.estimate("video.captions", {"burn": False}, minute) == 100
    assert prices.estimate("video.captions", {"burn": True}, minute) == 1000
    assert prices.estimate("audio.normalize", {}, {"duration": 120.0}) == 600
    assert prices.estimate("video.concat", {}, {"duration": 90.0}) == 1500
    assert prices.estimate("video.watermark", {}, {}) == 200


def test_the_activity_window_follows_motion_and_falls_back_to_the_centre():
    width, height = 40, 10
    blank = bytes(width * height)

    def with_block(x: int) -> bytes:
        rows = [bytes(255 if x <= i < x + 4 else 0 for i in range(width)) for _ in range(height)]
        return b"".join(rows)

    columns, _ = activity.profiles(width, height, [with_block(2), with_block(5), with_block(8)])
    assert activity.place(400, 100, columns) <= 20  # the window starts at the left
    still, _ = activity.profiles(width, height, [blank, blank])
    assert activity.place(400, 100, still) == 150  # nothing moves: the centre


def test_the_new_types_are_workflow_nodes_and_a_list_field_takes_references():
    policy = Policy(routing=None, prices=PriceList())  # type: ignore[arg-type]
    ok = {
        "inputs": {"source": {"kind": "video"}, "logo": {"kind": "image"}},
        "nodes": {
            "loud": {"type": "audio.normalize", "input": {"file_id": {"input": "source"}}},
            "mark": {"type": "video.watermark", "input": {"file_id": {"node": "loud", "output": 0},
                                                          "logo_file_id": {"input": "logo"}}},
            "shapes": {"type": "video.reframe", "params": {"aspects": ["9:16", "1:1"]},
                       "input": {"file_id": {"node": "mark", "output": 0}}},
            "square": {"type": "media.probe", "input": {"file_id": {"node": "shapes", "output": 1}}},
        },
    }  # fmt: skip
    parsed = graph.parse(ok, policy=policy, limits=None)
    assert parsed.nodes["shapes"].output_kinds == ("video", "video")
    # audio.normalize declares audio for output "audio": a watermark cannot take it.
    ok["nodes"]["loud"]["params"] = {"output": "audio"}
    with pytest.raises(graph.WorkflowInvalid) as refused:
        graph.parse(ok, policy=policy, limits=None)
    assert refused.value.problems[0]["code"] == "kind_mismatch"
    # A list of files may be made of references: each item is checked like a single input.
    joined = {
        "inputs": {"a": {"kind": "video"}, "b": {"kind": "image"}},
        "nodes": {"join": {"type": "video.concat", "input": {"file_ids": [{"input": "a"}, {"input": "b"}]}}},
    }
    with pytest.raises(graph.WorkflowInvalid) as refused:
        graph.parse(joined, policy=policy, limits=None)
    assert [(p["field"], p["code"]) for p in refused.value.problems] == [
        ("input.file_ids[1]", "kind_mismatch")
    ]
    joined["inputs"]["b"]["kind"] = "video"
    assert graph.parse(joined, policy=policy, limits=None).nodes["join"].depends_on() == set()
