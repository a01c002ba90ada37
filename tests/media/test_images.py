from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from faktry.errors import InvalidMedia, MediaTooLarge, UnsupportedFormat
from pipelines.media.images import open_image, probe_image, resize
from tests.mediafixtures import png_header_only

SECRET = "Ada Lovelace at 51.5N 0.1W"


def _jpeg(path: Path, size: tuple[int, int] = (400, 300), **save: Any) -> Path:
    """A JPEG whose top half is red and bottom half blue."""
    im = Image.new("RGB", size, (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, size[0], size[1] // 2))
    im.save(path, "JPEG", **save)
    return path


def _jpeg_with_metadata(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x013B] = SECRET  # Artist
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>{SECRET}</rdf:Description></x:xmpmeta>'
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _jpeg(path, exif=exif.tobytes(), comment=SECRET, xmp=xmp.encode(), icc_profile=srgb)


def test_a_png_header_declaring_100000_squared_pixels_is_too_large(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(100_000, 100_000))

    for attempt in (open_image, probe_image):
        with pytest.raises(MediaTooLarge):
            attempt(bomb)
    with pytest.raises(MediaTooLarge):
        resize(bomb, tmp_path / "out", width=10, height=10, mode="fit", format="png")


def test_the_limit_is_ours_not_pillows_global(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """8000x7000 is under Pillow's default limit and with the global check disabled, yet above
    faktry's 50 million pixels."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(8000, 7000))

    with pytest.raises(MediaTooLarge):
        open_image(big)


def test_a_caller_can_lower_the_pixel_limit(png_image: Path) -> None:
    with pytest.raises(MediaTooLarge):
        open_image(png_image, max_pixels=400 * 300 - 1)
    open_image(png_image, max_pixels=400 * 300).close()


def test_a_resize_box_beyond_the_limit_is_too_large(png_image: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaTooLarge):
        resize(png_image, tmp_path, width=10_000, height=10_000, mode="fill", format="png")


def test_probe_image_reports_format_and_size(png_image: Path, tmp_path: Path) -> None:
    info = probe_image(png_image)
    assert (info.format_name, info.width, info.height, info.streams) == ("png", 400, 300, [])

    jpeg = probe_image(_jpeg(tmp_path / "a.jpg", (640, 480)))
    assert (jpeg.format_name, jpeg.width, jpeg.height) == ("jpeg", 640, 480)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_a_truncated_image_is_invalid_media(tmp_path: Path, kind: str) -> None:
    whole = tmp_path / f"whole.{kind}"
    if kind == "jpeg":
        _jpeg(whole)
    else:
        Image.effect_noise((300, 200), 60).save(whole)  # noise so the data is not tiny
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(InvalidMedia):
        probe_image(cut)
    with pytest.raises(InvalidMedia):
        resize(cut, tmp_path / "out", width=50, height=50, mode="fit", format="png")


def test_formats_beyond_jpeg_png_gif_webp_are_unsupported(tmp_path: Path) -> None:
    bmp = tmp_path / "a.bmp"
    Image.new("RGB", (10, 10)).save(bmp)
    text = tmp_path / "a.png"
    text.write_text("not an image")

    for path in (bmp, text):
        with pytest.raises(UnsupportedFormat):
            open_image(path)


@pytest.mark.parametrize(
    ("mode", "box", "expected"),
    [
        ("fit", (200, 200), (200, 150)),
        ("fit", (800, 800), (400, 300)),  # never upscaled
        ("fill", (200, 200), (200, 200)),
        ("fill", (800, 100), (800, 100)),
        ("crop", (100, 50), (100, 50)),
        ("crop", (500, 500), (500, 500)),
    ],
)
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_resize_modes_give_their_exact_sizes(
    png_image: Path, tmp_path: Path, mode: Any, box: tuple[int, int], expected: tuple[int, int], fmt: Any
) -> None:
    outputs = resize(png_image, tmp_path, width=box[0], height=box[1], mode=mode, format=fmt)

    assert outputs == [f"image.{'jpg' if fmt == 'jpeg' else fmt}"]
    with Image.open(tmp_path / outputs[0]) as out:
        assert out.format == fmt.upper()
        assert out.size == expected


def test_crop_takes_the_center_without_scaling(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    im = Image.new("RGB", (300, 300), (0, 0, 255))
    im.paste((255, 0, 0), (100, 100, 200, 200))
    im.save(src)

    resize(src, tmp_path, width=100, height=100, mode="crop", format="png")

    with Image.open(tmp_path / "image.png") as out:
        assert out.getcolors() == [(100 * 100, (255, 0, 0))]


def test_output_keeps_nothing_but_pixels(tmp_path: Path) -> None:
    src = _jpeg_with_metadata(tmp_path / "phone.jpg")

    for fmt in ("jpeg", "png", "webp"):
        (name,) = resize(src, tmp_path / fmt, width=150, height=200, mode="fit", format=fmt)
        out_path = tmp_path / fmt / name
        assert SECRET.encode() not in out_path.read_bytes()
        assert b"Exif" not in out_path.read_bytes()
        with Image.open(out_path) as out:
            assert not out.getexif()
            assert not {"exif", "xmp", "icc_profile", "comment", "XML:com.adobe.xmp"} & set(out.info)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    src = _jpeg_with_metadata(tmp_path / "phone.jpg")  # stored 400x300, top half red

    resize(src, tmp_path, width=150, height=200, mode="fit", format="png")

    with Image.open(tmp_path / "image.png") as out:
        assert out.size == (150, 200)
        # Rotated 90° clockwise for display: the stored top is now the right side.
        red, _, blue = out.convert("RGB").getpixel((140, 100))  # type: ignore[misc]
        assert red > 200 and blue < 60


def test_transparency_becomes_white_in_jpeg(tmp_path: Path) -> None:
    src = tmp_path / "clear.png"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(src)

    resize(src, tmp_path, width=32, height=32, mode="fit", format="jpeg")

    with Image.open(tmp_path / "image.jpg") as out:
        assert out.mode == "RGB"
        assert all(channel >= 250 for channel in out.getpixel((16, 16)))  # type: ignore[union-attr]


def test_a_16_bit_grey_png_keeps_its_tone(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    Image.new("I;16", (64, 64), 40_000).save(src)

    resize(src, tmp_path, width=32, height=32, mode="fit", format="jpeg")

    with Image.open(tmp_path / "image.jpg") as out:
        assert out.getpixel((16, 16)) == pytest.approx(156, abs=3)


def test_a_palette_gif_is_resized_smoothly(tmp_path: Path) -> None:
    src = tmp_path / "a.gif"
    Image.linear_gradient("L").convert("P").save(src)

    resize(src, tmp_path, width=64, height=64, mode="fit", format="webp")

    with Image.open(tmp_path / "image.webp") as out:
        assert out.size == (64, 64)


def test_jpeg_downscale_decodes_through_draft_with_the_same_result_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _jpeg(tmp_path / "big.jpg", (1600, 1200))
    scales: list[float] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self: JpegImagePlugin.JpegImageFile, mode: Any, size: Any) -> Any:
        result = original(self, mode, size)
        if result is not None:
            scales.append(1600 / result[1][2])
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)

    resize(src, tmp_path / "draft", width=200, height=200, mode="fit", format="jpeg")
    assert scales == [8]
    resize(src, tmp_path / "full", width=200, height=200, mode="fit", format="jpeg", draft=False)
    assert scales == [8]  # not called again

    for variant in ("draft", "full"):
        with Image.open(tmp_path / variant / "image.jpg") as out:
            assert out.size == (200, 150)


def test_pillows_bomb_warning_becomes_too_large_without_touching_global_filters(tmp_path: Path) -> None:
    """10000x10000 is above Pillow's warning threshold but below its error threshold."""
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(10_000, 10_000))
    filters_before = list(warnings.filters)

    with pytest.raises(MediaTooLarge):
        open_image(big, max_pixels=10**9)

    assert warnings.filters == filters_before
