"""Still images with Pillow: safe opening, probing and resizing.

Only JPEG, PNG, GIF and WebP are opened (the formats `detect.sniff` accepts): Pillow's other
plugins widen the attack surface for nothing, and EPS would even start Ghostscript.

The pixel limit is enforced here, per call, from the header alone and before any decoding,
by comparing the declared size with `max_pixels`; it does not depend on the process-wide
`Image.MAX_IMAGE_PIXELS`. Pillow's own bomb warning is turned into an error only inside a local
`warnings.catch_warnings()` (restored on exit). That context is process-wide in Python 3.11, so
two threads may race on it; the explicit size check keeps the limit exact regardless.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from faktry.errors import FaktryError, InvalidMedia, MediaTooLarge, OutputTooLarge, UnsupportedFormat
from pipelines.media.ffmpeg import MediaInfo

MAX_IMAGE_PIXELS = 50_000_000

FORMATS = ("JPEG", "PNG", "GIF", "WEBP")

ResizeMode = Literal["fit", "fill", "crop"]
OutputFormat = Literal["jpeg", "png", "webp"]

_EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}
# Errors Pillow raises on broken data while decoding (truncated files, bad chunks, ...).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError)


@contextmanager
def _bombs_are_errors() -> Iterator[None]:
    """Within the block, Pillow's DecompressionBombWarning raises instead of warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise MediaTooLarge("image dimensions are too large") from None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise MediaTooLarge("image dimensions are too large")


def open_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image lazily (header only), refusing it before any pixel is decoded if it has more
    than `max_pixels` pixels (`MediaTooLarge`). Unknown or non-whitelisted formats raise
    `UnsupportedFormat`, a header Pillow cannot parse `InvalidMedia`. The caller closes it.
    """
    try:
        with _bombs_are_errors():
            im = Image.open(path, formats=FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedFormat("image format is not recognized") from None
    except _DECODE_ERRORS:
        raise InvalidMedia("image could not be decoded") from None
    try:
        _check_pixels(im.size, max_pixels)
    except MediaTooLarge:
        im.close()
        raise
    return im


def probe_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> MediaInfo:
    """Facts about an image as a `MediaInfo` (``format_name`` "jpeg", "png", "gif" or "webp",
    width and height, no streams), after checking that its data is complete.

    PNG is checked with verify() (chunk CRCs, no inflating); JPEG by decoding at 1/8 scale;
    GIF and WebP by decoding the first frame.
    """
    with open_image(path, max_pixels=max_pixels) as im:
        format_name = (im.format or "unknown").lower()
        width, height = im.size
        try:
            with _bombs_are_errors():
                if format_name == "png":
                    im.verify()
                else:
                    if format_name == "jpeg":
                        im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
                    im.load()
        except _DECODE_ERRORS:
            raise InvalidMedia("image could not be decoded") from None
    return MediaInfo(format_name=format_name, width=width, height=height, streams=[])


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    """The size after EXIF orientation is applied (orientations 5-8 swap the axes)."""
    orientation = im.getexif().get(0x0112, 1)
    return (im.height, im.width) if orientation in (5, 6, 7, 8) else im.size


def _target(mode: ResizeMode, source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The size the decoded image is scaled to before any crop."""
    (sw, sh), (bw, bh) = source, box
    if mode == "crop":
        return source
    if mode == "fit":
        scale = min(bw / sw, bh / sh, 1.0)  # never upscale
        return max(1, round(sw * scale)), max(1, round(sh * scale))
    scale = max(bw / sw, bh / sh)  # fill: cover the box, then crop the overflow
    return max(bw, round(sw * scale)), max(bh, round(sh * scale))


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert pixels from an embedded ICC profile to sRGB, since the profile is not kept.
    A broken profile is ignored rather than failing the job."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        converted = ImageCms.profileToProfile(
            im,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if im.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im
    return converted if converted is not None else im


def _normalize(im: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, RGB or RGBA, so resampling is smooth (P and 1 would be
    resized with NEAREST) and every output format can take it."""
    if im.mode in ("LA", "PA", "RGBa", "La") or "transparency" in im.info:
        return im.convert("RGBA")
    if im.mode in ("L", "RGB", "RGBA"):
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: a plain convert("L") clips everything above 255 to white.
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode in ("1", "F"):
        return im.convert("L")
    return im.convert("RGB")


def _for_format(im: Image.Image, fmt: OutputFormat) -> Image.Image:
    if fmt == "jpeg" and im.mode == "RGBA":
        # JPEG has no alpha: flatten onto white rather than the black Pillow would give.
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(im, mask=im.getchannel("A"))
        return flat
    if fmt == "webp" and im.mode == "L":
        return im.convert("RGB")
    return im


def _center_crop(im: Image.Image, box: tuple[int, int]) -> Image.Image:
    """Cut `box` out of the middle of `im`; where the box is larger, the outside is transparent
    (white once flattened for JPEG)."""
    bw, bh = box
    left, top = (im.width - bw) // 2, (im.height - bh) // 2
    if left >= 0 and top >= 0:
        return im.crop((left, top, left + bw, top + bh))
    canvas = Image.new("RGBA", box, (0, 0, 0, 0))
    canvas.paste(im.convert("RGBA"), (-left, -top))
    return canvas


def resize(
    src: Path,
    out_dir: Path,
    *,
    width: int,
    height: int,
    mode: ResizeMode,
    format: OutputFormat,
    quality: int = 85,
    max_pixels: int = MAX_IMAGE_PIXELS,
    draft: bool = True,
) -> list[str]:
    """Write ``image.<jpg|png|webp>`` into `out_dir` and return ``[name]``.

    Modes, for a `width` x `height` box: ``fit`` scales down to fit inside the box keeping the
    aspect ratio (never upscales, so the output may be smaller than the box); ``fill`` is
    exactly the box, scaled to cover it and center-cropped; ``crop`` is exactly the box cut
    from the center of the original without scaling (areas beyond a smaller original are
    transparent, or white in JPEG).

    EXIF orientation is applied, an ICC profile is converted to sRGB, and the output keeps
    nothing but pixels: no EXIF, XMP, ICC or comments. With `draft` (default) a JPEG is decoded
    directly at a reduced DCT scale when the output is small enough (much faster).

    A box of more than `max_pixels` pixels is refused whatever the mode (`OutputTooLarge`), and
    so is a source of more than `max_pixels` (`MediaTooLarge`).
    """
    name, _ = resize_described(
        src,
        out_dir,
        width=width,
        height=height,
        mode=mode,
        format=format,
        quality=quality,
        max_pixels=max_pixels,
        draft=draft,
    )
    return [name]


def resize_described(
    src: Path,
    out_dir: Path,
    *,
    width: int,
    height: int,
    mode: ResizeMode,
    format: OutputFormat,
    quality: int = 85,
    max_pixels: int = MAX_IMAGE_PIXELS,
    draft: bool = True,
) -> tuple[str, MediaInfo]:
    """`resize`, returning the written file's name and the facts `probe_image` would report of
    it (format, width and height), taken from the image as it was encoded instead of by
    reading the file back."""
    if fmt_ext := _EXTENSIONS.get(format):
        name = f"image.{fmt_ext}"
    else:
        raise ValueError(f"unknown output format {format!r}")
    if mode not in ("fit", "fill", "crop"):
        raise ValueError(f"unknown resize mode {mode!r}")
    if width < 1 or height < 1 or not 1 <= quality <= 100:
        raise ValueError("width and height must be positive and quality within 1..100")
    if width * height > max_pixels:
        raise OutputTooLarge(f"a {width}x{height} image is more than the {max_pixels} pixels allowed")
    out_dir.mkdir(parents=True, exist_ok=True)

    with open_image(src, max_pixels=max_pixels) as im:
        try:
            with _bombs_are_errors():
                out = _resized(im, (width, height), mode, draft=draft)
                out = _for_format(out, format)
                # Pillow takes EXIF, XMP, ICC and comments from .info when saving; keep none.
                out.info.clear()
                out.save(out_dir / name, format=format.upper(), **_save_options(format, quality))
        except FaktryError:
            raise
        except _DECODE_ERRORS:
            raise InvalidMedia("image could not be decoded") from None
    return name, MediaInfo(format_name=format, width=out.width, height=out.height, streams=[])


def _resized(im: Image.Image, box: tuple[int, int], mode: ResizeMode, *, draft: bool) -> Image.Image:
    oriented = _oriented_size(im)
    target = _target(mode, oriented, box)
    if draft and im.format == "JPEG" and mode != "crop":
        # draft() works on the stored (unrotated) axes and only ever picks a scale whose
        # result is at least the requested size, so the quality of the final resize holds.
        swapped = oriented != im.size
        request = (target[1], target[0]) if swapped else target
        im.draft(im.mode, (max(1, request[0]), max(1, request[1])))
    im.load()
    work = _normalize(_to_srgb(ImageOps.exif_transpose(im)))
    if mode == "crop":
        return _center_crop(work, box)
    if work.size != target:
        work = work.resize(target, Image.Resampling.LANCZOS)
    return _center_crop(work, box) if mode == "fill" else work


def _save_options(fmt: OutputFormat, quality: int) -> dict[str, object]:
    if fmt == "jpeg":
        return {"quality": quality, "optimize": True}
    if fmt == "webp":
        return {"quality": quality, "method": 4}
    return {"compress_level": 6}
