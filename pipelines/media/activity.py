"""Where the picture's activity is: the part of the frame a crop should keep.

`video.reframe` crops one source to other aspects. A centred crop loses a subject that stands
to one side, so the crop follows an estimate of activity over frames sampled across the
video: motion (the change between consecutive samples) counts fully, edges (detail) a quarter,
so a moving subject wins over a busy but still background while a still scene is still framed
on its detail. The estimate is summed per column (and per row), and the crop is the window
of the wanted width (or height) with the most of it. A picture with no activity at all is
cropped in the centre.

One window for the whole video: a crop that moves would need tracking and smoothing, and
is not done.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter, ImageOps

#: Weight of edges against motion in the estimate.
EDGE_WEIGHT = 0.25
#: Below this share of the profile's total in the best window over the centre's, the centre wins.
MIN_GAIN = 0.02


def profiles(width: int, height: int, frames: list[bytes]) -> tuple[list[float], list[float]]:
    """Activity per column and per row of `frames` (8-bit grey pictures, `width` x `height`)."""
    columns = [0.0] * width
    rows = [0.0] * height

    def count(picture: Image.Image, weight: float) -> None:
        grey = picture.convert("F")
        across = grey.resize((width, 1), Image.Resampling.BOX)  # each column's mean
        down = grey.resize((1, height), Image.Resampling.BOX)  # each row's mean
        for i in range(width):
            columns[i] += weight * float(across.getpixel((i, 0)))  # type: ignore[arg-type]
        for i in range(height):
            rows[i] += weight * float(down.getpixel((0, i)))  # type: ignore[arg-type]

    previous = None
    for frame in frames:
        picture = Image.frombytes("L", (width, height), frame)
        # The filter leaves the outermost pixels as they were: they are not edges.
        edges = ImageOps.expand(ImageOps.crop(picture.filter(ImageFilter.FIND_EDGES), 1), 1, fill=0)
        count(edges, EDGE_WEIGHT)
        if previous is not None:
            count(ImageChops.difference(picture, previous), 1.0)
        previous = picture
    return columns, rows


def best_start(profile: list[float], window: int) -> int:
    """The first index of the `window` consecutive entries of `profile` with the largest sum;
    the centred window when no window holds clearly more than the centre's."""
    size = len(profile)
    window = max(1, min(window, size))
    centre = (size - window) // 2
    sums = [0.0]
    for value in profile:
        sums.append(sums[-1] + value)
    total = sums[-1]

    def held(start: int) -> float:
        return sums[start + window] - sums[start]

    best = max(range(size - window + 1), key=lambda s: (held(s), -abs(s - centre)))
    if total <= 0 or held(best) - held(centre) <= MIN_GAIN * total:
        return centre
    return best


def place(length: int, crop: int, profile: list[float]) -> int:
    """Where a `crop`-long window of a `length`-long side starts (even, inside the picture),
    following `profile` (activity along that side, at any resolution)."""
    if crop >= length or not profile:
        return 0
    scale = len(profile) / length
    start = best_start(profile, round(crop * scale)) / scale
    return max(0, min(length - crop, int(start) // 2 * 2))
