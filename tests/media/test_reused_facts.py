"""Steps reuse what is already known: the input's facts probed at upload, and the facts of an
image they just encoded. Known facts must be exactly what a probe would have found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipelines.media import detect, ffmpeg, images
from pipelines.media.ffmpeg import MediaInfo
from pipelines.steps import media as steps
from pipelines.steps.base import StepContext


def context(src: Path, out: Path, kind: str, facts: dict[str, Any], **params: Any) -> StepContext:
    out.mkdir(parents=True, exist_ok=True)
    return StepContext(
        input_path=src,
        input_kind=kind,
        input_media=facts,
        out_dir=out,
        params=params,
        timeout=60,
        on_progress=lambda fraction: None,
        should_cancel=lambda: False,
    )


def stored(info: MediaInfo) -> dict[str, Any]:
    """Facts as a file row keeps them: through JSON."""
    return dict(json.loads(json.dumps(info.to_dict())))


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ffprobe and Pillow probe run from here on, by file name."""
    seen: list[str] = []
    real_probe, real_probe_image = ffmpeg.probe, images.probe_image

    def probe(path: Any, **kw: Any) -> MediaInfo:
        seen.append(Path(path).name)
        return real_probe(path, **kw)

    def probe_image(path: Any, **kw: Any) -> MediaInfo:
        seen.append(Path(path).name)
        return real_probe_image(path, **kw)

    monkeypatch.setattr(ffmpeg, "probe", probe)
    monkeypatch.setattr(images, "probe_image", probe_image)
    return seen


def test_stored_facts_read_back_as_the_probe_that_made_them(clip_small: Path) -> None:
    info = ffmpeg.probe(clip_small)
    assert MediaInfo.from_dict(stored(info)) == info


@pytest.mark.parametrize(
    "facts",
    [{}, {"format_name": "mov", "frame_rate": 25}, {"duration": 3.0}, {"format_name": "mov", "streams": "x"}],
    ids=["never probed", "an unknown field", "no format", "streams not a list"],
)
def test_facts_of_another_shape_are_not_taken_as_a_probe(facts: dict[str, Any]) -> None:
    assert MediaInfo.from_dict(facts) is None


def test_a_transcode_uses_the_facts_probed_at_upload(
    clip_small: Path, tmp_path: Path, probes: list[str]
) -> None:
    facts = stored(ffmpeg.probe(clip_small))
    probes.clear()
    result = steps.transcode(context(clip_small, tmp_path / "out", "video", facts, preset="mp4_360p"))
    assert probes == []
    [output] = result.outputs
    assert (output.root / output.paths[0]).stat().st_size > 0


def test_a_thumbnail_and_a_sprite_use_the_facts_probed_at_upload(
    clip_small: Path, tmp_path: Path, probes: list[str]
) -> None:
    facts = stored(ffmpeg.probe(clip_small))
    probes.clear()
    steps.thumbnail(context(clip_small, tmp_path / "thumb", "video", facts, at_fraction=0.5, width=64))
    steps.thumbnail(context(clip_small, tmp_path / "sprite", "video", facts, sprite=True, frames=4, width=32))
    assert probes == []
    assert (tmp_path / "sprite" / "sprite" / "sprite.jpg").stat().st_size > 0


def test_a_probe_job_answers_with_the_facts_probed_at_upload(
    clip_small: Path, png_image: Path, tmp_path: Path, probes: list[str]
) -> None:
    video, image = ffmpeg.probe(clip_small), images.probe_image(png_image)
    probes.clear()
    assert steps.probe(context(clip_small, tmp_path / "v", "video", stored(video))).result == {
        "media": video.to_dict()
    }
    assert steps.probe(context(png_image, tmp_path / "i", "image", stored(image))).result == {
        "media": image.to_dict()
    }
    assert probes == []


def test_an_input_never_probed_is_probed_by_the_step(
    clip_small: Path, png_image: Path, tmp_path: Path, probes: list[str]
) -> None:
    """Such as an HLS segment an earlier job wrote: it is stored with no media facts."""
    result = steps.probe(context(clip_small, tmp_path / "v", "video", {}))
    assert result.result["media"] == ffmpeg.probe(clip_small).to_dict()
    steps.probe(context(png_image, tmp_path / "i", "image", {}))
    steps.transcode(context(clip_small, tmp_path / "t", "video", {}, preset="audio_mp3"))
    assert probes[0] == clip_small.name and png_image.name in probes
    assert probes.count(clip_small.name) == 3  # the probe job, the check above, the transcode


def _jpeg_rotated(path: Path) -> Path:
    """A 64x40 JPEG whose EXIF says to turn it a quarter (orientation 6): it shows as 40x64."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.linear_gradient("L").resize((64, 40)).convert("RGB").save(path, exif=exif, quality=90)
    return path


def _png_with_alpha(path: Path) -> Path:
    Image.new("RGBA", (50, 30), (10, 200, 30, 128)).save(path)
    return path


def _grey_jpeg(path: Path) -> Path:
    Image.linear_gradient("L").resize((300, 100)).save(path, quality=80)
    return path


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("mode", ["fit", "fill", "crop"])
@pytest.mark.parametrize("make", [_jpeg_rotated, _png_with_alpha, _grey_jpeg])
def test_a_resize_describes_its_output_exactly_as_probing_it_would(
    tmp_path: Path, fmt: str, mode: str, make: Any
) -> None:
    src = make(tmp_path / ("src.png" if make is _png_with_alpha else "src.jpg"))
    result = steps.resize(
        context(src, tmp_path / "out", "image", {}, width=48, height=20, mode=mode, format=fmt)
    )
    [output] = result.outputs
    [name] = output.paths
    known = output.known[name]
    sniffed, info = detect.inspect(output.root / name, timeout=30)
    assert (known.content_type, known.kind, known.media) == (
        sniffed.content_type,
        sniffed.kind,
        info.to_dict(),
    )


def test_a_resize_reads_its_input_once_and_never_probes_it(
    tmp_path: Path, probes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _grey_jpeg(tmp_path / "src.jpg")
    opened: list[str] = []
    real_open = images.open_image

    def open_image(path: Any, **kw: Any) -> Image.Image:
        opened.append(Path(path).name)
        return real_open(path, **kw)

    monkeypatch.setattr(images, "open_image", open_image)
    steps.resize(context(src, tmp_path / "out", "image", {}, width=30, height=10))
    assert opened == ["src.jpg"] and probes == []
