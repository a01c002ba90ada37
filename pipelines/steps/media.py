"""Steps for faktry's own media work: probe, transcode, thumbnails, image resizes and captions
(burned in, and as SRT and WebVTT files); and the WebVTT output of a transcription. The editing
operations (loudness, watermark, reframe, concat) are in `pipelines.steps.edit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faktry.errors import FaktryError, InvalidMedia
from pipelines.media import detect, ffmpeg, images, mp4, subtitles
from pipelines.media.ffmpeg import MediaInfo
from pipelines.steps.base import Described, Output, StepContext, StepResult

#: Content types of the formats `image.resize` writes.
_IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def _info(ctx: StepContext) -> MediaInfo:
    """The input's facts: those probed at upload, else a probe now (files never probed)."""
    return info_of(ctx, ctx.input_path, ctx.input_media, ctx.input_kind)


def info_of(ctx: StepContext, path: Path, media: dict[str, Any], kind: str = "") -> MediaInfo:
    """A file's facts: ``media`` as probed at upload, else a probe now."""
    stored = MediaInfo.from_dict(media)
    if stored is not None:
        return stored
    if kind == "image":
        return images.probe_image(path, max_pixels=ctx.max_image_pixels)
    # ffprobe works in the output folder too: nothing a tool does lands outside the job's
    # temporary folder.
    return ffmpeg.probe(path, timeout=ctx.probe_timeout, cwd=ctx.out_dir, memory_limit=ctx.memory_limit_bytes)


def _folder(ctx: StepContext, name: str) -> Path:
    root = ctx.out_dir / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def probe(ctx: StepContext) -> StepResult:
    # The file's bytes never change once stored, so the facts probed at upload are the answer.
    info = _info(ctx)
    ctx.on_progress(1.0)
    return StepResult(result={"media": info.to_dict()})


def transcode(ctx: StepContext) -> StepResult:
    preset = ctx.params["preset"]
    name = "hls" if preset == "hls" else "media"
    root = _folder(ctx, name)
    paths = ffmpeg.transcode(
        ctx.input_path,
        root,
        preset,
        info=_info(ctx),
        timeout=ctx.timeout,
        on_progress=ctx.on_progress,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    return StepResult(outputs=[Output(name=name, root=root, paths=paths, known=written_mp4(root, paths))])


def written_mp4(root: Path, paths: list[str]) -> dict[str, Described]:
    """The MP4 and M4A files of `paths`, which a step's ffmpeg just wrote, described from
    their headers (`pipelines.media.mp4`) exactly as the runner's probe would describe them;
    a file of another shape is left to that probe."""
    known = {}
    for rel in paths:
        path = root / rel
        if path.suffix not in (".mp4", ".m4a"):
            continue
        info = mp4.describe(path)
        if info is None:
            continue
        try:
            sniffed = detect.reconcile(detect.sniff(path), info)
        except FaktryError:
            continue  # the probe says why
        known[rel] = Described(sniffed.content_type, sniffed.kind, info.to_dict())
    return known


def thumbnail(ctx: StepContext) -> StepResult:
    p = ctx.params
    info = _info(ctx)
    if p.get("sprite"):
        root = _folder(ctx, "sprite")
        paths = ffmpeg.sprite(
            ctx.input_path,
            root,
            info=info,
            frames=p.get("frames", 10),
            columns=p.get("columns", 5),
            width=p.get("width", 160),
            timeout=ctx.timeout,
            should_cancel=ctx.should_cancel,
            memory_limit=ctx.memory_limit_bytes,
        )
        name = "sprite"
    else:
        root = _folder(ctx, "thumbnail")
        at_seconds = p.get("at_seconds")
        at_fraction = p.get("at_fraction", 0.1 if at_seconds is None else None)
        paths = ffmpeg.thumbnail(
            ctx.input_path,
            root,
            info=info,
            at_seconds=at_seconds,
            at_fraction=at_fraction,
            width=p.get("width"),
            format=p.get("format", "jpeg"),
            timeout=ctx.timeout,
            should_cancel=ctx.should_cancel,
            memory_limit=ctx.memory_limit_bytes,
        )
        name = "thumbnail"
    ctx.on_progress(1.0)
    return StepResult(outputs=[Output(name=name, root=root, paths=paths)])


def resize(ctx: StepContext) -> StepResult:
    p = ctx.params
    root = _folder(ctx, "image")
    fmt = p.get("format", "jpeg")
    name, info = images.resize_described(
        ctx.input_path,
        root,
        width=p["width"],
        height=p["height"],
        mode=p.get("mode", "fit"),
        format=fmt,
        quality=p.get("quality", 85),
        max_pixels=ctx.max_image_pixels,
    )
    ctx.on_progress(1.0)
    known = {name: Described(_IMAGE_TYPES[fmt], "image", info.to_dict())}
    return StepResult(outputs=[Output(name="image", root=root, paths=[name], known=known)])


#: Subtitle formats `video.captions` writes: extension, content type.
_SUBTITLE_FORMATS = {"srt": ("srt", "application/x-subrip"), "vtt": ("vtt", "text/vtt")}


def captions(ctx: StepContext) -> StepResult:
    """A transcript's cues burned into a 9:16 video of the input (`ffmpeg.captions`) unless
    ``burn`` is false, then written as SRT and WebVTT files, one output per ``formats`` entry
    (the cues as read, so the files and the burned captions say and time the same)."""
    p = ctx.params
    source = ctx.inputs["subtitles_file_id"]
    if source.stat().st_size > subtitles.MAX_BYTES:
        raise InvalidMedia("the subtitles file is too large")
    cues = subtitles.parse(source.read_text("utf-8", errors="replace"))
    outputs = []
    if p.get("burn", True):
        outputs.append(_burn(ctx, cues))
    for fmt in p.get("formats", []):
        ext, content_type = _SUBTITLE_FORMATS[fmt]
        root = _folder(ctx, f"captions_{fmt}")
        text = subtitles.to_srt(cues) if fmt == "srt" else subtitles.to_vtt(cues)
        (root / f"captions.{ext}").write_text(text, "utf-8")
        known = {f"captions.{ext}": Described(content_type, "subtitles", {})}
        outputs.append(Output(name=f"captions_{fmt}", root=root, paths=[f"captions.{ext}"], known=known))
    ctx.on_progress(1.0)
    return StepResult(outputs=outputs, result={"cues": len(cues)})


def _burn(ctx: StepContext, cues: list[subtitles.Cue]) -> Output:
    p = ctx.params
    height = p.get("height", 1280)
    width = height * 9 // 16 // 2 * 2
    root = _folder(ctx, "video")
    script = "captions.ass"
    ass = subtitles.to_ass(
        cues,
        width=width,
        height=height,
        font_size=p.get("font_size") or max(12, height // 20),
        position=p.get("position", "bottom"),
        font_family=p.get("font_family", "DejaVu Sans"),
        text_color=p.get("text_color", "#FFFFFF"),
        outline_color=p.get("outline_color", "#000000"),
    )
    (root / script).write_text(ass, "utf-8")
    paths = ffmpeg.captions(
        ctx.input_path,
        root,
        script=script,
        info=_info(ctx),
        width=width,
        height=height,
        fit=p.get("fit", "crop"),
        timeout=ctx.timeout,
        on_progress=ctx.on_progress,
        should_cancel=ctx.should_cancel,
        memory_limit=ctx.memory_limit_bytes,
    )
    (root / script).unlink()
    return Output(name="video", root=root, paths=paths)


def transcript_output(result: dict[str, Any], duration: float | None, out_dir: Path) -> Output:
    """A transcription's subtitles as a WebVTT output (``subtitles/transcript.vtt``), timed by
    the provider's segments when it gives them, else spread over the input's ``duration``. An
    empty transcript gives a file with no cues: a transcription always has this one output."""
    cues = subtitles.timed(str(result.get("text") or ""), duration, result.get("segments"))
    root = out_dir / "subtitles"
    root.mkdir(parents=True, exist_ok=True)
    (root / "transcript.vtt").write_text(subtitles.to_vtt(cues), "utf-8")
    known = {"transcript.vtt": Described("text/vtt", "subtitles", {})}
    return Output(name="subtitles", root=root, paths=["transcript.vtt"], known=known)
