"""Steps that edit media for a finished video: loudness, a watermark, reframing to other
aspects, and joining clips. Each is a job type alone and a workflow node
(pipelines/jobtypes.py); ffmpeg does the work (`pipelines.media.ffmpeg`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from faktry.errors import InvalidMedia
from pipelines.media import activity, ffmpeg
from pipelines.steps.base import Output, StepContext, StepResult
from pipelines.steps.media import info_of

#: Sampled frames the activity estimate of `reframe` reads.
ACTIVITY_SAMPLES = 12


def _info(ctx: StepContext) -> ffmpeg.MediaInfo:
    return info_of(ctx, ctx.input_path, ctx.input_media, ctx.input_kind)


def _folder(ctx: StepContext, name: str) -> Path:
    root = ctx.out_dir / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def normalize(ctx: StepContext) -> StepResult:
    """Two-pass EBU R128 normalization: measure, apply with the measured values, and measure
    the result, so the job's result reports the loudness before and after."""
    p = ctx.params
    info = _info(ctx)
    keep_video = p.get("output", "video") == "video"
    root = _folder(ctx, "video" if keep_video else "audio")
    share = 1 / 3

    def part(start: float) -> Callable[[float], None]:
        return lambda fraction: ctx.on_progress(start + share * fraction)

    def measure(path: Path, progress: Callable[[float], None]) -> ffmpeg.Loudness:
        return ffmpeg.measure_loudness(
            path,
            duration=info.duration,
            timeout=ctx.timeout,
            cwd=ctx.out_dir,
            on_progress=progress,
            should_cancel=ctx.should_cancel,
            memory_limit=ctx.memory_limit_bytes,
        )

    if not info.has_audio:
        raise InvalidMedia("input has no audio stream")
    before = measure(ctx.input_path, part(0))
    paths = ffmpeg.normalize_loudness(
        ctx.input_path,
        root,
        info=info,
        measured=before,
        target=p.get("target_lufs", -14.0),
        true_peak=p.get("true_peak", -1.0),
        keep_video=keep_video,
        timeout=ctx.timeout,
        on_progress=part(share),
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    after = measure(root / paths[0], part(2 * share))
    result = {
        "target_lufs": p.get("target_lufs", -14.0),
        "before": before.to_dict(),
        "after": after.to_dict(),
    }
    return StepResult(outputs=[Output(name=root.name, root=root, paths=paths)], result={"loudness": result})


def watermark(ctx: StepContext) -> StepResult:
    p = ctx.params
    root = _folder(ctx, "video")
    logo = ctx.inputs["logo_file_id"]
    paths = ffmpeg.watermark(
        ctx.input_path,
        logo,
        root,
        info=_info(ctx),
        corner=p.get("corner", "bottom_right"),
        scale=p.get("scale", 0.15),
        margin=p.get("margin", 0.03),
        opacity=p.get("opacity", 0.8),
        timeout=ctx.timeout,
        on_progress=ctx.on_progress,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    return StepResult(outputs=[Output(name="video", root=root, paths=paths)])


def reframe(ctx: StepContext) -> StepResult:
    """One video per aspect of ``aspects``, in that order, each the largest crop of that
    aspect placed where the activity is (`pipelines.media.activity`)."""
    info = _info(ctx)
    if not info.width or not info.height:
        raise InvalidMedia("the video's size is unknown")
    width, height, frames = ffmpeg.activity_frames(
        ctx.input_path,
        ctx.out_dir,
        info=info,
        samples=ACTIVITY_SAMPLES,
        timeout=ctx.timeout,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    columns, rows = activity.profiles(width, height, frames)
    crops = []
    boxes = {}
    for aspect in ctx.params.get("aspects", list(ffmpeg.ASPECTS)):
        w, h = ffmpeg.crop_box(info.width, info.height, aspect)
        x = activity.place(info.width, w, columns)
        y = activity.place(info.height, h, rows)
        folder = "video_" + aspect.replace(":", "x")
        crops.append((folder, (x, y, w, h)))
        boxes[aspect] = {"x": x, "y": y, "width": w, "height": h}
    root = _folder(ctx, "reframe")
    paths = ffmpeg.reframe(
        ctx.input_path,
        root,
        info=info,
        crops=crops,
        timeout=ctx.timeout,
        on_progress=ctx.on_progress,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    outputs = [
        Output(name=folder, root=root / folder, paths=[path.split("/", 1)[1]])
        for (folder, _), path in zip(crops, paths, strict=True)
    ]
    return StepResult(outputs=outputs, result={"crops": boxes})


def concat(ctx: StepContext) -> StepResult:
    p = ctx.params
    clips = [(path, info_of(ctx, path, media)) for path, media in ctx.lists["file_ids"]]
    root = _folder(ctx, "video")
    paths, seconds = ffmpeg.concat(
        clips,
        root,
        width=p.get("width", 1280),
        height=p.get("height", 720),
        fps=p.get("fps", 30),
        fit=p.get("fit", "pad"),
        crossfade=p.get("crossfade", 0.0),
        transition=p.get("transition", "fade"),
        timeout=ctx.timeout,
        on_progress=ctx.on_progress,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    return StepResult(
        outputs=[Output(name="video", root=root, paths=paths)],
        result={"clips": len(clips), "expected_seconds": round(seconds, 3)},
    )
