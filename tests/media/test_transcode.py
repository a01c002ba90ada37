from __future__ import annotations

import re
from pathlib import Path

import pytest

from faktry.errors import InvalidMedia
from pipelines.media.ffmpeg import PRESETS, probe, transcode


@pytest.mark.parametrize(
    ("preset", "height", "name"),
    [
        ("mp4_360p", 360, "video.mp4"),
        ("mp4_480p", 480, "video.mp4"),
        ("mp4_720p", 720, "video.mp4"),
        ("mp4_1080p", 1080, "video.mp4"),
    ],
)
def test_mp4_presets_give_h264_and_aac_at_the_preset_height(
    clip_small: Path, tmp_path: Path, preset: str, height: int, name: str
) -> None:
    source = probe(clip_small)

    outputs = transcode(clip_small, tmp_path, preset, info=source, timeout=60)

    assert outputs == [name]
    info = probe(tmp_path / name)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.height == height
    assert info.width == round(height * 4 / 3 / 2) * 2  # aspect kept, width even
    assert info.duration == pytest.approx(source.duration, abs=0.15)


def test_mp4_output_starts_with_its_index_so_it_streams(clip_small: Path, tmp_path: Path) -> None:
    transcode(clip_small, tmp_path, "mp4_360p", info=probe(clip_small), timeout=60)

    head = (tmp_path / "video.mp4").read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_webm_preset_gives_vp9_and_opus_capped_at_720_lines(clip_720p: Path, tmp_path: Path) -> None:
    source = probe(clip_720p)

    assert transcode(clip_720p, tmp_path, "webm_vp9", info=source, timeout=60) == ["video.webm"]

    info = probe(tmp_path / "video.webm")
    assert (info.video_codec, info.audio_codec) == ("vp9", "opus")
    assert (info.width, info.height) == (1280, 720)
    assert info.duration == pytest.approx(source.duration, abs=0.15)


@pytest.mark.parametrize(
    ("preset", "name", "codec"),
    [
        ("audio_mp3", "audio.mp3", "mp3"),
        ("audio_aac", "audio.m4a", "aac"),
        ("audio_opus", "audio.ogg", "opus"),
    ],
)
def test_audio_presets_keep_only_the_audio(
    clip_small: Path, tmp_path: Path, preset: str, name: str, codec: str
) -> None:
    source = probe(clip_small)

    assert transcode(clip_small, tmp_path, preset, info=source, timeout=60) == [name]

    info = probe(tmp_path / name)
    assert info.audio_codec == codec
    assert info.video_codec is None
    assert info.duration == pytest.approx(source.duration, abs=0.15)


def test_a_video_without_audio_transcodes_to_a_video_without_audio(silent_clip: Path, tmp_path: Path) -> None:
    transcode(silent_clip, tmp_path, "mp4_360p", info=probe(silent_clip), timeout=60)

    info = probe(tmp_path / "video.mp4")
    assert (info.video_codec, info.audio_codec) == ("h264", None)


def test_an_audio_preset_on_a_video_without_audio_says_so(silent_clip: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="input has no audio stream"):
        transcode(silent_clip, tmp_path, "audio_mp3", info=probe(silent_clip), timeout=60)


def test_a_video_preset_on_audio_says_there_is_no_video(wav: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="input has no video stream"):
        transcode(wav, tmp_path, "mp4_360p", info=probe(wav), timeout=60)


def test_an_unknown_preset_is_a_programming_error(clip_small: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        transcode(clip_small, tmp_path, "mp4_4k", info=probe(clip_small), timeout=60)
    assert "mp4_4k" not in PRESETS


def _playlist_entries(playlist: Path) -> list[str]:
    return [line for line in playlist.read_text().splitlines() if line and not line.startswith("#")]


def test_hls_writes_a_master_with_two_renditions_whose_segments_all_exist(
    clip_720p: Path, tmp_path: Path
) -> None:
    outputs = transcode(clip_720p, tmp_path, "hls", info=probe(clip_720p), timeout=60)

    assert outputs[0] == "master.m3u8"
    assert len(outputs) == len(set(outputs))
    master = tmp_path / "master.m3u8"
    renditions = _playlist_entries(master)
    assert renditions == ["360p/index.m3u8", "720p/index.m3u8"]
    resolutions = re.findall(r"RESOLUTION=(\d+x\d+)", master.read_text())
    assert resolutions == ["640x360", "1280x720"]
    bandwidths = [int(b) for b in re.findall(r"BANDWIDTH=(\d+)", master.read_text())]
    assert bandwidths[0] < bandwidths[1]
    for rendition in renditions:
        playlist = tmp_path / rendition
        segments = _playlist_entries(playlist)
        assert segments, rendition
        for segment in segments:
            assert "/" not in segment  # relative to its playlist: the folder plays as is
            path = playlist.parent / segment
            assert path.stat().st_size > 0
            assert str(path.relative_to(tmp_path)) in outputs
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(outputs)


def test_hls_of_a_small_silent_source_still_has_two_renditions_without_audio(
    silent_clip: Path, tmp_path: Path
) -> None:
    outputs = transcode(silent_clip, tmp_path, "hls", info=probe(silent_clip), timeout=60)

    assert _playlist_entries(tmp_path / "master.m3u8") == ["120p/index.m3u8", "240p/index.m3u8"]
    segment = probe(tmp_path / next(o for o in outputs if o.endswith(".ts")))
    assert (segment.height, segment.audio_codec) == (120, None)
