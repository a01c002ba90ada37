"""The editing job types end to end: submitted through the API, run by a real worker with real
ffmpeg on small generated media, their outputs checked with ffprobe and by looking at frames
and measuring loudness; bad inputs refused with stable codes and nothing held."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from faktry.db import transaction
from quotas import ledger
from tests.mediafixtures import H264, MakeMedia
from tests.web.helpers import upload, wait_for_job


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def submit(client, tenant, body: dict[str, Any]) -> Any:
    return client.post("/v1/jobs", json=body, headers=tenant.headers)


def run(client, tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = submit(client, tenant, body)
    assert r.status_code == 202, r.json
    done = wait_for_job(client, tenant, r.json["id"], timeout=120)
    assert done["status"] == "succeeded", done
    return done


def download(client, tenant, file_id: str, target: Path) -> Path:
    r = client.get(f"/v1/files/{file_id}/content", headers=tenant.headers)
    assert r.status_code == 200
    target.write_bytes(r.data)
    return target


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    return json.loads(out)


def stream(probe: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((s for s in probe["streams"] if s["codec_type"] == kind), None)


def loudness(path: Path) -> float:
    """Integrated loudness in LUFS, measured here with ffmpeg's ebur128 filter."""
    err = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128", "-f", "null", "-"],
        check=True, capture_output=True, timeout=60,
    ).stderr.decode()  # fmt: skip
    summary = err[err.rindex("Summary:") :]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary)[1])  # type: ignore[index]


def frame(path: Path, at: float, out: Path) -> Image.Image:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-ss", str(at), "-i", str(path), "-frames:v", "1", str(out)],
        check=True, timeout=30,
    )  # fmt: skip
    return Image.open(out).convert("RGB")


def money_is_exact(runtime) -> None:
    with transaction(runtime.context.sessions) as s:
        assert ledger.check(s) == []


def held(runtime, tenant) -> int:
    with transaction(runtime.context.sessions) as s:
        return ledger.balance(s, tenant.id).held


# -- audio.normalize -----------------------------------------------------------------------------

QUIET = "sine=frequency=440:sample_rate=48000:duration=6,volume=-9dB"


@pytest.fixture(scope="session")
def quiet_tone(make_media: MakeMedia) -> Path:
    """6 s of a tone at about -30 LUFS."""
    return make_media("quiet.wav", "-f", "lavfi", "-i", QUIET)


@pytest.fixture(scope="session")
def quiet_video(make_media: MakeMedia) -> Path:
    """4 s, 320x240 H.264, with pink noise at about -30 LUFS."""
    return make_media(
        "quietnoise.mp4",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4",
        "-f", "lavfi", "-i", "anoisesrc=color=pink:sample_rate=48000:amplitude=0.05:duration=4,volume=-10dB",
        *H264, "-c:a", "aac", "-shortest",
    )  # fmt: skip


def test_a_quiet_tone_ends_within_one_lu_of_the_target_measured_before_and_after(
    client, tenant, worker, runtime, quiet_tone, tmp_path
):
    assert loudness(quiet_tone) == pytest.approx(-30, abs=1.5)
    source = upload(client, tenant, quiet_tone).json["id"]
    done = run(
        client,
        tenant,
        {"type": "audio.normalize", "input": {"file_id": source}, "params": {"output": "audio"}},
    )
    [audio] = done["outputs"]
    assert audio["kind"] == "audio" and audio["media"]["audio_codec"] == "aac"
    assert audio["media"]["duration"] == pytest.approx(6, abs=0.1)
    measured = loudness(download(client, tenant, audio["id"], tmp_path / "out.m4a"))
    assert measured == pytest.approx(-14, abs=1)
    report = done["result"]["loudness"]
    assert report["target_lufs"] == -14
    assert report["before"]["integrated_lufs"] == pytest.approx(-30, abs=1.5)
    assert report["after"]["integrated_lufs"] == pytest.approx(measured, abs=0.5)
    assert report["after"]["true_peak_dbtp"] <= -1 + 0.5
    assert set(report["before"]) == {"integrated_lufs", "true_peak_dbtp", "lra_lu"}
    assert done["cost"]["charged"] == 100  # under a minute: the minimum
    money_is_exact(runtime)


def test_a_videos_audio_is_normalized_with_its_picture_copied(
    client, tenant, worker, runtime, quiet_video, tmp_path
):
    source = upload(client, tenant, quiet_video).json["id"]
    body = {"type": "audio.normalize", "input": {"file_id": source}, "params": {"target_lufs": -20}}
    [video] = run(client, tenant, body)["outputs"]
    path = download(client, tenant, video["id"], tmp_path / "out.mp4")
    before, after = ffprobe(quiet_video), ffprobe(path)
    picture = stream(after, "video")
    assert picture is not None and picture["codec_name"] == "h264"
    assert (picture["width"], picture["height"]) == (320, 240)
    # Copied, not re-encoded: the same number of frames at the same bit rate.
    assert picture["nb_frames"] == stream(before, "video")["nb_frames"]  # type: ignore[index]
    assert picture["bit_rate"] == stream(before, "video")["bit_rate"]  # type: ignore[index]
    assert loudness(path) == pytest.approx(-20, abs=1)
    money_is_exact(runtime)


def test_normalize_refusals_name_their_field_and_hold_nothing(client, tenant, runtime, quiet_tone, png_image):
    audio = upload(client, tenant, quiet_tone).json["id"]
    image = upload(client, tenant, png_image).json["id"]
    r = submit(client, tenant, {"type": "audio.normalize", "input": {"file_id": audio}})
    assert r.status_code == 422 and r.json["error"]["code"] == "unsupported_input"
    assert r.json["error"]["field"] == "input.file_id" and "output 'video'" in r.json["error"]["message"]
    r = submit(
        client,
        tenant,
        {"type": "audio.normalize", "input": {"file_id": image}, "params": {"output": "audio"}},
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "unsupported_input"
    r = submit(
        client,
        tenant,
        {"type": "audio.normalize", "input": {"file_id": audio}, "params": {"target_lufs": -3}},
    )
    assert r.status_code == 422 and r.json["error"]["field"] == "params.target_lufs"
    assert held(runtime, tenant) == 0
    money_is_exact(runtime)


# -- video.watermark -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def grey_clip(make_media: MakeMedia) -> Path:
    """2 s, 320x240, flat dark grey, with a tone."""
    return make_media(
        "grey.mp4",
        "-f", "lavfi", "-i", "color=c=0x303030:size=320x240:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        *H264, "-c:a", "aac", "-shortest",
    )  # fmt: skip


@pytest.fixture
def red_logo(tmp_path: Path) -> Path:
    path = tmp_path / "logo.png"
    Image.new("RGBA", (100, 50), (230, 20, 20, 255)).save(path)
    return path


def mean(image: Image.Image, box: tuple[int, int, int, int]) -> list[float]:
    return ImageStat.Stat(image.crop(box)).mean


def test_a_logo_lands_in_its_corner_and_the_opposite_corner_is_unchanged(
    client, tenant, worker, runtime, grey_clip, red_logo, tmp_path
):
    video = upload(client, tenant, grey_clip).json["id"]
    logo = upload(client, tenant, red_logo).json["id"]
    body = {
        "type": "video.watermark",
        "input": {"file_id": video, "logo_file_id": logo},
        "params": {"corner": "top_right", "scale": 0.25, "margin": 0.05, "opacity": 1},
    }
    done = run(client, tenant, body)
    [out] = done["outputs"]
    assert (out["media"]["width"], out["media"]["height"]) == (320, 240)
    assert out["media"]["audio_codec"] == "aac" and out["media"]["duration"] == pytest.approx(2, abs=0.1)
    picture = frame(download(client, tenant, out["id"], tmp_path / "w.mp4"), 1.0, tmp_path / "w.png")
    # 80x40 (a quarter of 320 wide, the logo's 2:1 kept), 16 pixels from the top and right.
    r, g, b = mean(picture, (228, 20, 300, 52))
    assert r > 180 and g < 70 and b < 70
    assert all(abs(v - 0x30) < 8 for v in mean(picture, (10, 180, 90, 230)))  # bottom left
    assert all(abs(v - 0x30) < 8 for v in mean(picture, (228, 70, 300, 110)))  # below the logo
    money_is_exact(runtime)


def test_opacity_blends_the_logo_with_the_picture(client, tenant, worker, grey_clip, red_logo, tmp_path):
    video = upload(client, tenant, grey_clip).json["id"]
    logo = upload(client, tenant, red_logo).json["id"]
    body = {
        "type": "video.watermark",
        "input": {"file_id": video, "logo_file_id": logo},
        "params": {"corner": "bottom_left", "scale": 0.25, "margin": 0.05, "opacity": 0.5},
    }
    [out] = run(client, tenant, body)["outputs"]
    picture = frame(download(client, tenant, out["id"], tmp_path / "w.mp4"), 1.0, tmp_path / "w.png")
    r, g, _ = mean(picture, (20, 188, 92, 220))
    assert 110 < r < 160 and g < 0x30  # half red, half grey


def test_a_logo_that_is_not_an_image_is_refused(client, tenant, runtime, grey_clip):
    video = upload(client, tenant, grey_clip).json["id"]
    r = submit(
        client, tenant, {"type": "video.watermark", "input": {"file_id": video, "logo_file_id": video}}
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "unsupported_input"
    assert r.json["error"]["field"] == "input.logo_file_id"
    r = submit(client, tenant, {"type": "video.watermark", "input": {"file_id": video}})
    assert r.status_code == 422 and r.json["error"]["field"] == "input.logo_file_id"
    assert held(runtime, tenant) == 0


# -- video.reframe -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def left_subject(make_media: MakeMedia) -> Path:
    """3 s, 320x180 black with a white square bobbing up and down in the left third."""
    box = "drawbox=x=40:y='20+100*abs(sin(2*t))':w=30:h=30:color=white:t=fill"
    return make_media(
        "left.mp4",
        "-f", "lavfi", "-i", f"color=c=black:size=320x180:rate=25:duration=3,{box}",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
        *H264, "-c:a", "aac", "-shortest",
    )  # fmt: skip


def centroid_x(image: Image.Image) -> float | None:
    grey = image.convert("L")
    width = grey.width
    points = [(i % width) for i, v in enumerate(grey.tobytes()) if v > 128]
    return sum(points) / len(points) if points else None


def test_reframing_follows_a_subject_on_the_left_into_each_aspect(
    client, tenant, worker, runtime, left_subject, tmp_path
):
    source = upload(client, tenant, left_subject).json["id"]
    body = {
        "type": "video.reframe",
        "input": {"file_id": source},
        "params": {"aspects": ["9:16", "1:1", "16:9"]},
    }
    done = run(client, tenant, body)
    outputs = done["outputs"]
    assert [o["name"] for o in outputs] == ["video_9x16", "video_1x1", "video_16x9"]
    sizes = [(o["media"]["width"], o["media"]["height"]) for o in outputs]
    assert sizes == [(100, 180), (180, 180), (320, 180)]
    for out in outputs:
        path = download(client, tenant, out["id"], tmp_path / f"{out['name']}.mp4")
        probe = ffprobe(path)
        assert float(probe["format"]["duration"]) == pytest.approx(3, abs=0.1)
        assert stream(probe, "audio") is not None
        for at in (0.2, 1.4, 2.6):
            picture = frame(path, at, tmp_path / f"{out['name']}-{at}.png")
            x = centroid_x(picture)
            assert x is not None, f"the subject left the {out['name']} frame at {at} s"
    crop = done["result"]["crops"]["9:16"]
    assert crop["x"] <= 40 and crop["x"] + crop["width"] >= 70  # not the centre (110..210)
    # Three outputs of 3 s: three times the minimum.
    assert done["cost"]["charged"] == 3 * 200
    money_is_exact(runtime)


def test_reframe_refuses_an_unknown_aspect_and_an_empty_list(client, tenant, left_subject):
    source = upload(client, tenant, left_subject).json["id"]
    for aspects in (["4:3"], [], ["1:1", "1:1"]):
        body = {"type": "video.reframe", "input": {"file_id": source}, "params": {"aspects": aspects}}
        r = submit(client, tenant, body)
        assert r.status_code == 422 and r.json["error"]["field"].startswith("params.aspects"), r.json


# -- video.concat --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def two_clips(make_media: MakeMedia) -> tuple[Path, Path]:
    """2 s of 320x240 at 25 fps with audio, and 1.5 s of 640x360 at 30 fps without."""
    first = make_media(
        "cat1.mp4",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        *H264, "-c:a", "aac", "-shortest",
    )  # fmt: skip
    second = make_media("cat2.mp4", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=1.5", *H264)
    return first, second


@pytest.mark.parametrize(("crossfade", "expected"), [(0.5, 3.0), (0, 3.5)])
def test_clips_of_different_sizes_and_rates_join_into_one_format(
    client, tenant, worker, runtime, two_clips, tmp_path, crossfade, expected
):
    ids = [upload(client, tenant, clip).json["id"] for clip in two_clips]
    body = {
        "type": "video.concat",
        "input": {"file_ids": ids},
        "params": {"width": 480, "height": 270, "fps": 24, "crossfade": crossfade},
    }
    done = run(client, tenant, body)
    [out] = done["outputs"]
    probe = ffprobe(download(client, tenant, out["id"], tmp_path / "joined.mp4"))
    picture, sound = stream(probe, "video"), stream(probe, "audio")
    assert picture is not None and sound is not None
    assert (picture["width"], picture["height"], picture["r_frame_rate"]) == (480, 270, "24/1")
    assert float(probe["format"]["duration"]) == pytest.approx(expected, abs=0.15)
    assert float(sound["duration"]) == pytest.approx(expected, abs=0.15)
    assert done["result"] == {"clips": 2, "expected_seconds": expected}
    assert done["cost"]["charged"] == 200
    money_is_exact(runtime)


def test_concat_refusals_have_stable_codes_and_hold_nothing(client, tenant, runtime, two_clips, png_image):
    clip = upload(client, tenant, two_clips[0]).json["id"]
    image = upload(client, tenant, png_image).json["id"]
    r = submit(client, tenant, {"type": "video.concat", "input": {"file_ids": [clip]}})
    assert r.status_code == 422 and r.json["error"]["code"] == "too_few_clips"
    assert r.json["error"]["field"] == "input.file_ids"
    r = submit(client, tenant, {"type": "video.concat", "input": {"file_ids": [clip] * 21}})
    assert r.status_code == 422 and r.json["error"]["code"] == "too_many_clips"
    r = submit(client, tenant, {"type": "video.concat", "input": {"file_ids": [clip, image]}})
    assert r.status_code == 422 and r.json["error"]["code"] == "unsupported_input"
    assert r.json["error"]["field"] == "input.file_ids.1"
    r = submit(client, tenant, {"type": "video.concat", "input": {"file_ids": [clip, "fil_nope"]}})
    assert r.status_code == 422 and r.json["error"]["code"] == "file_not_found"
    assert r.json["error"]["field"] == "input.file_ids.1"
    assert held(runtime, tenant) == 0
    money_is_exact(runtime)


def test_a_crossfade_longer_than_a_clip_fails_the_job_with_its_code(
    client, tenant, worker, runtime, two_clips
):
    ids = [upload(client, tenant, clip).json["id"] for clip in two_clips]
    body = {"type": "video.concat", "input": {"file_ids": ids}, "params": {"crossfade": 1.5}}
    r = submit(client, tenant, body)
    assert r.status_code == 202
    done = wait_for_job(client, tenant, r.json["id"], timeout=60)
    assert done["status"] == "failed" and done["error"]["code"] == "clip_too_short", done
    assert held(runtime, tenant) == 0
    money_is_exact(runtime)
