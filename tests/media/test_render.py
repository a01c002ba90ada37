"""`video.render` end to end: a timeline submitted through the API, rendered by a real worker
with real ffmpeg from small generated stills, clips and tones, its MP4 checked with ffprobe, by
looking at a frame and by measuring its loudness; its SRT read back; bad timelines refused
naming the exact JSON path; a quote priced over the stated length; a cancel leaving nothing."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from faktry.db import transaction
from pipelines import timeline as timelines
from pipelines.media import subtitles
from quotas import ledger
from tests.media.test_edit_jobs import download, ffprobe, frame, loudness, submit
from tests.mediafixtures import H264, MakeMedia
from tests.web.helpers import upload, wait_for_job

RED, BLUE, GREEN = (200, 30, 30), (30, 40, 190), (20, 220, 40)
SCRIPTS = [
    "Every morning starts with the same small question on the way to work.",
    "We asked a hundred people how they answer it.",
    "Here is what they said.",
]
#: Seconds of each narration tone.
NARRATION = [2.0, 2.5, 1.2]


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


@pytest.fixture(scope="session")
def media(make_media: MakeMedia, media_dir: Path) -> dict[str, Path]:
    """Two stills, a 3 s video clip, three narration tones, a music bed and a logo."""
    files = {}
    for name, colour, size in (("red", RED, (640, 480)), ("blue", BLUE, (480, 640))):
        files[name] = media_dir / f"still_{name}.png"
        Image.new("RGB", size, colour).save(files[name])
    files["clip"] = make_media(
        "render_clip.mp4", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=3", *H264
    )
    for i, (seconds, hz) in enumerate(zip(NARRATION, (300, 450, 600), strict=True)):
        source = f"sine=frequency={hz}:sample_rate=44100:duration={seconds},volume=-16dB"
        files[f"n{i + 1}"] = make_media(f"narration{i + 1}.wav", "-f", "lavfi", "-i", source)
    noise = "anoisesrc=color=pink:sample_rate=44100:amplitude=0.1:duration=4"
    files["music"] = make_media("music.m4a", "-f", "lavfi", "-i", noise, "-c:a", "aac")
    files["logo"] = media_dir / "render_logo.png"
    Image.new("RGBA", (120, 60), (*GREEN, 255)).save(files["logo"])
    return files


def render(client, tenant, file_ids: list[str], timeline: dict[str, Any]) -> dict[str, Any]:
    r = submit(
        client,
        tenant,
        {"type": "video.render", "input": {"file_ids": file_ids}, "params": {"timeline": timeline}},
    )
    assert r.status_code == 202, r.json
    done = wait_for_job(client, tenant, r.json["id"], timeout=180)
    assert done["status"] == "succeeded", done
    return done


def stream(probe: dict[str, Any], kind: str) -> dict[str, Any]:
    found = next((s for s in probe["streams"] if s["codec_type"] == kind), None)
    assert found is not None, f"no {kind} stream"
    return found


def mean(image: Image.Image, box: tuple[int, int, int, int]) -> list[float]:
    return ImageStat.Stat(image.crop(box)).mean


def distance(a: list[float] | tuple[int, ...], b: list[float] | tuple[int, ...]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def money_is_exact(runtime) -> None:
    with transaction(runtime.context.sessions) as s:
        assert ledger.check(s) == []


def held(runtime, tenant) -> int:
    with transaction(runtime.context.sessions) as s:
        return ledger.balance(s, tenant.id).held


def three_scenes(width: int, height: int) -> dict[str, Any]:
    """A still, a still and a video clip, each held for its narration; music; a title; a logo.
    Files: red, n1, blue, n2, clip, n3, music, logo."""
    return {
        "version": 1,
        "format": {"width": width, "height": height, "fps": 30},
        "video": [
            {"id": "s1", "file": 0, "duration": 2, "hold_for": "n1", "transition": {"type": "fade", "duration": 0.5}},
            {"id": "s2", "file": 2, "duration": 2, "fit": "pad", "hold_for": "n2",
             "transition": {"type": "wipeleft", "duration": 0.4}},
            {"id": "s3", "file": 4, "in": 0.5, "out": 2.5, "hold_for": "n3"},
        ],
        "audio": [
            *(
                {"id": f"n{i}", "file": 2 * i - 1, "role": "narration", "at": {"clip": f"s{i}", "offset": 0.25},
                 "text": SCRIPTS[i - 1]}
                for i in (1, 2, 3)
            ),
            {"id": "m", "file": 6, "role": "music", "at": 0, "volume": 0.5},
        ],
        "text": [{"text": "Mornings", "start": 0, "end": 1.5, "position": "top"}],
        "captions": {"max_chars": 30},
        "loudness": {"target_lufs": -14},
        "watermark": {"file": 7, "corner": "bottom_right", "margin": 24, "opacity": 1, "width": 0.18},
    }  # fmt: skip


def uploads(client, tenant, media: dict[str, Path], names: list[str]) -> list[str]:
    return [upload(client, tenant, media[name]).json["id"] for name in names]


SCENE_FILES = ["red", "n1", "blue", "n2", "clip", "n3", "music", "logo"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_three_scene_portrait_video_is_rendered_as_its_timeline_says(
    client, tenant, worker, runtime, media, tmp_path
):
    doc = three_scenes(720, 1280)
    done = render(client, tenant, uploads(client, tenant, media, SCENE_FILES), doc)
    video, captions = done["outputs"]
    assert (video["name"], video["kind"], captions["name"], captions["kind"]) == (
        "video", "video", "captions", "subtitles"
    )  # fmt: skip

    # The timeline resolved with the files' own lengths says how long the video is.
    sources = [
        timelines.Source("image"),
        timelines.Source("audio", audio_seconds=NARRATION[0]),
        timelines.Source("image"),
        timelines.Source("audio", audio_seconds=NARRATION[1]),
        timelines.Source("video", picture_seconds=3.0),
        timelines.Source("audio", audio_seconds=NARRATION[2]),
        timelines.Source("audio", audio_seconds=4.0),
        timelines.Source("image"),
    ]
    plan = timelines.resolve(doc, sources)
    result = done["result"]
    assert result["duration"] == pytest.approx(plan.duration, abs=0.002)
    assert [(c["id"], c["start"], c["end"]) for c in result["clips"]] == [
        (s.id, pytest.approx(s.start, abs=0.001), pytest.approx(s.start + s.seconds, abs=0.001))
        for s in plan.video
    ]
    # Each scene lasts at least its narration (offset, length, tail) and the transition out.
    for clip, seconds, fade in zip(result["clips"], NARRATION, (0.5, 0.4, 0), strict=True):
        assert clip["end"] - clip["start"] >= 0.25 + seconds + 0.3 + fade - 0.001

    path = download(client, tenant, video["id"], tmp_path / "render.mp4")
    probe = ffprobe(path)
    picture, sound = stream(probe, "video"), stream(probe, "audio")
    assert (picture["codec_name"], picture["width"], picture["height"]) == ("h264", 720, 1280)
    assert picture["r_frame_rate"] == "30/1" and int(picture["nb_frames"]) == plan.frames
    assert sound["codec_name"] == "aac"
    assert float(probe["format"]["duration"]) == pytest.approx(plan.duration, abs=0.05)
    assert float(sound["duration"]) == pytest.approx(plan.duration, abs=0.05)

    # The SRT says the scripts, cut into cues, each inside its narration's time.
    srt = download(client, tenant, captions["id"], tmp_path / "captions.srt").read_text()
    cues = subtitles.parse(srt)
    expected = [chunk for script in SCRIPTS for chunk in timelines.split_text(script, 30)]
    assert [cue.text for cue in cues] == expected
    assert all(len(cue.text) <= 30 for cue in cues)
    at = 0
    for clip, script, seconds in zip(result["clips"], SCRIPTS, NARRATION, strict=True):
        mine = cues[at : at + len(timelines.split_text(script, 30))]
        at += len(mine)
        start = clip["start"] + 0.25
        assert all(start - 0.001 <= c.start < c.end <= start + seconds + 0.001 for c in mine), (clip, mine)
    assert [c["text"] for c in result["captions"]] == expected

    # Loudness, measured here, within 1 LU of the target; the result says what it measured.
    measured = loudness(path)
    assert measured == pytest.approx(-14, abs=1)
    assert result["loudness"]["target_lufs"] == -14
    assert result["loudness"]["integrated"] == pytest.approx(measured, abs=0.7)

    # The logo sits in the bottom right corner: 0.18 of 720 is 128 wide, 64 high, 24 from the
    # edges. Around it the red still shows, far from the logo's green.
    still = frame(path, 1.0, tmp_path / "still.png")
    logo_box = (720 - 24 - 128 + 8, 1280 - 24 - 64 + 8, 720 - 24 - 8, 1280 - 24 - 8)
    beside = (300, logo_box[1], 520, logo_box[3])
    assert distance(mean(still, logo_box), GREEN) < 25
    assert distance(mean(still, beside), RED) < 25
    assert distance(mean(still, beside), GREEN) > 150
    # The last scene (the video clip) carries it too.
    clip = frame(path, result["clips"][2]["start"] + 1.0, tmp_path / "clip.png")
    assert distance(mean(clip, logo_box), GREEN) < 25

    assert done["cost"]["charged"] <= done["cost"]["estimated"]
    money_is_exact(runtime)


def small(duration: float, **clip: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "format": {"width": 180, "height": 320, "fps": 30},
        "video": [{"id": "s1", "file": 0, "duration": duration, "motion": "none", **clip}],
        "audio": [{"id": "n1", "file": 1, "role": "narration", "at": {"clip": "s1"}, "text": "Hello there."}],
        "captions": {"burn": False},
    }


def test_hold_for_lengthens_a_scene_to_its_narration_and_the_charge_stays_the_quote(
    client, tenant, worker, runtime, media, tmp_path
):
    ids = uploads(client, tenant, media, ["blue", "n1", "clip", "red"])
    doc = small(1.0, hold_for="n1")
    doc["video"] += [
        {"id": "s2", "file": 2, "duration": 1, "transition": {"type": "fade", "duration": 0.3}},
        {"id": "s3", "file": 3, "duration": 1},
    ]
    done = render(client, tenant, ids, doc)
    # s1: 0 s offset + 2 s of narration + 0.3 s = 2.3 s, not the 1 s written; a cut into s2,
    # which fades into s3 over 0.3 s.
    assert done["result"]["duration"] == pytest.approx(4.0, abs=0.001)
    assert done["result"]["clips"] == [
        {"id": "s1", "start": 0.0, "end": 2.3},
        {"id": "s2", "start": 2.3, "end": 3.3},
        {"id": "s3", "start": 3.0, "end": 4.0},
    ]
    [video, srt] = done["outputs"]
    assert srt["kind"] == "subtitles"  # written, though not burned
    path = download(client, tenant, video["id"], tmp_path / "held.mp4")
    probe = ffprobe(path)
    assert float(probe["format"]["duration"]) == pytest.approx(4.0, abs=0.05)
    assert int(stream(probe, "video")["nb_frames"]) == 120
    assert (stream(probe, "video")["width"], stream(probe, "video")["height"]) == (180, 320)
    # The blue still until 2.3 s, the red one at the end.
    assert distance(mean(frame(path, 2.0, tmp_path / "a.png"), (40, 100, 140, 220)), BLUE) < 25
    assert distance(mean(frame(path, 3.8, tmp_path / "b.png"), (40, 100, 140, 220)), RED) < 25
    # Priced over the 2.7 s written (the minimum), and never charged more.
    assert done["cost"]["estimated"] == 300 and done["cost"]["charged"] == 300
    money_is_exact(runtime)


def test_a_timeline_without_sound_gets_a_silent_track_and_no_loudness(
    client, tenant, worker, media, tmp_path
):
    ids = uploads(client, tenant, media, ["red"])
    doc = small(1.0)
    doc["audio"] = []
    done = render(client, tenant, ids, doc)
    assert done["result"]["loudness"] == {"target_lufs": -14, "integrated": None, "true_peak": None}
    assert done["result"]["captions"] == []
    [video, srt] = done["outputs"]
    probe = ffprobe(download(client, tenant, video["id"], tmp_path / "silent.mp4"))
    assert stream(probe, "audio")["codec_name"] == "aac"
    assert float(probe["format"]["duration"]) == pytest.approx(1.0, abs=0.05)
    assert srt["kind"] == "subtitles"


def test_a_quote_prices_the_timelines_stated_length(client, tenant, media):
    ids = uploads(client, tenant, media, ["blue", "n1", "clip"])
    doc = small(30.0, hold_for="n1", transition={"type": "fade", "duration": 1})
    doc["video"].append({"id": "s2", "file": 2, "in": 1})  # as long as the clip from 1 s: 2 s
    body = {"type": "video.render", "input": {"file_ids": ids}, "params": {"timeline": doc}}
    r = client.post("/v1/jobs/quote", json=body, headers=tenant.headers)
    assert r.status_code == 200, r.json
    # 30 + 2 - 1 = 31 s at 1500 a minute.
    assert timelines.stated_seconds(doc, [None, 2.0, 3.0]) == 31
    assert r.json["price"] == 775
    doc["video"][0]["duration"] = 2
    r = client.post("/v1/jobs/quote", json=body, headers=tenant.headers)
    assert r.json["price"] == 300  # 3 s: the minimum


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        (lambda d: d["video"][0].update(file=5), "params.timeline.video[0].file", "file_out_of_range"),
        (
            lambda d: d["video"].append({"file": 2, "in": 2, "out": 1}),
            "params.timeline.video[2].out",
            "invalid_range",
        ),
        (lambda d: d["video"][0].update(zoom=2), "params.timeline.video[0].zoom", "unknown_field"),
        (lambda d: d["video"][0].update(hold_for="n9"), "params.timeline.video[0].hold_for", "unknown_clip"),
        (
            lambda d: d["video"][0].update(transition={"type": "fade", "duration": 1.5}),
            "params.timeline.video[0].transition.duration",
            "transition_too_long",
        ),
        (lambda d: d["audio"][0].update(file=0), "params.timeline.audio[0].file", "unsupported_input"),
        (lambda d: d.update(watermark={"file": 1}), "params.timeline.watermark.file", "unsupported_input"),
    ],
)
def test_a_bad_timeline_is_a_422_naming_its_json_path_and_holds_nothing(
    client, tenant, runtime, media, change, field, code
):
    ids = uploads(client, tenant, media, ["blue", "n1", "clip"])
    doc = small(1.0)
    doc["video"][0]["transition"] = {"type": "fade", "duration": 0.5}
    doc["video"].append({"file": 2, "duration": 1})
    change(doc)
    r = submit(
        client, tenant, {"type": "video.render", "input": {"file_ids": ids}, "params": {"timeline": doc}}
    )
    assert r.status_code == 422, r.json
    assert (r.json["error"]["field"], r.json["error"]["code"]) == (field, code), r.json
    r = submit(
        client,
        tenant,
        {"type": "video.render", "input": {"file_ids": ids}, "params": {"timeline": doc, "x": 1}},
    )
    assert (r.status_code, r.json["error"]["field"]) == (422, "params.x")
    assert held(runtime, tenant) == 0


def test_canceling_a_render_midway_leaves_no_partial_output(client, tenant, worker, runtime, media, settings):
    ids = uploads(client, tenant, media, ["red", "blue"])
    doc = {
        "version": 1,
        "format": {"width": 360, "height": 640, "fps": 30},
        "video": [{"file": i % 2, "duration": 8} for i in range(4)],
    }
    r = submit(
        client, tenant, {"type": "video.render", "input": {"file_ids": ids}, "params": {"timeline": doc}}
    )
    assert r.status_code == 202, r.json
    job_id = r.json["id"]
    wait_for_job(client, tenant, job_id, until=("running",))
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json["progress"] <= 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
    assert r.status_code == 202
    done = wait_for_job(client, tenant, job_id, timeout=20)
    assert done["status"] == "canceled" and done["outputs"] == []
    jobs_dir = settings.var_dir.parent / "storage" / "t" / tenant.id / "jobs"
    assert not jobs_dir.exists() or not [p for p in jobs_dir.rglob("*") if p.is_file()]
    assert not list(settings.tmp_dir.glob(f"{job_id}*"))
    running = subprocess.run(["pgrep", "-f", str(settings.tmp_dir)], capture_output=True, text=True)
    assert not running.stdout.strip()
    assert held(runtime, tenant) == 0
    money_is_exact(runtime)
