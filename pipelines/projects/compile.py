"""A project, compiled: the workflow graph that renders it, and the timeline its last step plays.

The graph (docs/workflows.md) has no run inputs: every file it needs is written in it. Its
nodes, for scenes numbered from 1:

- ``narrate_<n>``: ``speech.synthesize`` of scene n's script (none for an empty script), with
  the project's voice model and voice, or the default speech model;
- ``media_<n>``: ``image.generate`` (sized to the format) or ``video.generate`` (in the
  format's aspect ratio, long enough for the scene when the model lets it choose) for a scene
  whose media is a prompt; the project's style notes are added to the prompt;
- ``music``: ``music.generate`` when the music is a prompt (instrumental when the model can);
- ``render``: one ``video.render`` of the timeline, its ``input.file_ids`` listing library
  files and the outputs of the nodes above, in the timeline's index order.

A model left out is the default for what it makes (`default_model`): the first model the
catalog lists whose provider is configured, else the catalog's offline model, which is what
runs when no provider is configured at all.

The timeline (docs/timeline.schema.json): the format's frame (9:16 720x1280, 16:9 1280x720,
1:1 1080x1080, 30 fps); one video clip per scene (``s<n>``: a still slowly zooms and pans, a
clip plays from its start; each lasts its scene's duration and at least as long as its
narration, ``hold_for``), with the scene's transition into the next; one narration per
script (``n<n>``, a quarter second into its scene, its text the captions' source); the music
under it all, looped and ducked under the narration; captions burned in the brand's font and
colours unless the project's caption style says otherwise, and written as SRT; the brand's
logo as a watermark; the mix normalized to -14 LUFS.

Refusals are 422s naming the project's field: a project without scenes (``scenes``), a
scene without media (``scenes[2].media``), a file that has left the library since it was
picked (``file_not_found``) or a voice the speech model does not have (``voice.voice``).
`project_field` names the project field a refused graph's problem is about.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from faktry.errors import ValidationError
from pipelines import jobtypes
from pipelines.brands.models import Brand
from pipelines.catalog import Catalog, Model
from pipelines.media.subtitles import COLOR, FONT_FAMILY
from pipelines.projects import schema, store
from pipelines.projects.models import Project
from pipelines.services import checked_params

#: The house caption style, where neither the project nor its brand says otherwise.
HOUSE_STYLE = {"font": "DejaVu Sans", "color": "#ffffff", "outline": "#000000"}
#: Where each caption style value comes from in a brand: (part, key).
BRAND_STYLE = {
    "font": ("typography", "body_font"),
    "color": ("colors", "primary"),
    "outline": ("colors", "accent"),
}
#: Longest caption line, by format: narrower frames take shorter lines.
CAPTION_CHARS = {"16:9": 42, "9:16": 28, "1:1": 32}
#: A narration starts this long into its scene.
NARRATION_OFFSET = 0.25
TARGET_LUFS = -14
WATERMARK = {"corner": "bottom_right", "margin": 24, "opacity": 0.85, "width": 0.18}


@dataclass(frozen=True)
class Compiled:
    #: The workflow graph a render runs.
    graph: dict[str, Any]
    #: The timeline document its ``render`` node plays.
    timeline: dict[str, Any]
    #: The render node's ``input.file_ids``: library file ids and ``{"node", "output"}``
    #: references, the timeline's ``file`` indexes pointing into it.
    file_ids: list[Any]
    #: The project field each of ``file_ids`` comes from (``scenes[0].media``, ``music``...).
    origins: list[str]
    #: The length as written: the scenes' durations less their transitions.
    seconds: float


def default_model(catalog: Catalog, configured: frozenset[str], job_type: str) -> Model:
    """The model a project uses for ``job_type`` when it names none."""
    for model in catalog.for_type(job_type):
        if model.provider != "local" and model.provider in configured:
            return model
    return catalog.models[catalog.offline[job_type]]


def compile_project(
    session: Session, project: Project, *, catalog: Catalog, configured: frozenset[str]
) -> Compiled:
    """The project's graph and timeline, with its files and brand as they are now."""
    body = store.to_dict(project)
    named = store.files_named(body)
    files = store.library_files(session, project.tenant_id, {file_id for _, file_id, _ in named})
    for field, file_id, kinds in named:
        if file_id not in files:
            raise ValidationError("the file is no longer in your library", field=field, code="file_not_found")
        if files[file_id].kind not in kinds:
            raise ValidationError(f"{field} takes {' or '.join(kinds)}", field=field, code="wrong_file_kind")
    brand = session.get(Brand, project.brand_id) if project.brand_id else None
    logo = None
    if brand is not None and brand.logo_file_id:
        found = store.library_files(session, project.tenant_id, {brand.logo_file_id}).get(brand.logo_file_id)
        logo = found.id if found is not None and found.kind == "image" else None
    return build(
        body,
        kinds={file_id: row.kind for file_id, row in files.items()},
        brand=brand,
        logo_file_id=logo,
        catalog=catalog,
        configured=configured,
    )


def build(
    project: dict[str, Any],
    *,
    kinds: dict[str, str],
    brand: Brand | None,
    logo_file_id: str | None,
    catalog: Catalog,
    configured: frozenset[str],
) -> Compiled:
    """`compile_project` without the database: ``project`` in its stored shape
    (`store.to_dict`), ``kinds`` the kind of each library file it names."""
    scenes = project["scenes"]
    if not scenes:
        raise ValidationError("the project has no scenes yet", field="scenes", code="no_scenes")
    fmt = project["format"]
    width, height = schema.FORMATS[fmt]
    notes = (project["style"].get("notes") or "").strip()
    nodes: dict[str, Any] = {}
    files = _Files()
    video: list[dict[str, Any]] = []
    audio: list[dict[str, Any]] = []
    speech = _speech_params(project["voice"], catalog, configured)
    for n, scene in enumerate(scenes, start=1):
        where = f"scenes[{n - 1}]"
        media = scene["media"]
        if media is None:
            raise ValidationError(
                "the scene has no picture or clip: pick a library file or write a prompt",
                field=f"{where}.media",
                code="scene_without_media",
            )
        clip: dict[str, Any] = {"id": f"s{n}"}
        if "file_id" in media:
            kind = kinds[media["file_id"]]
            clip["file"] = files.literal(media["file_id"], f"{where}.media.file_id")
        else:
            kind = media["kind"]
            job_type = f"{kind}.generate"
            model = _model(catalog, configured, media.get("model"), job_type, f"{where}.media.model")
            if kind == "image":
                params = _image_params(model, width, height)
            else:
                params = _video_params(model, fmt, scene["duration"])
            prompt = media["prompt"] + (f"\n\nStyle: {notes}" if notes else "")
            nodes[f"media_{n}"] = {
                "type": job_type,
                "params": {"model": model.id, **params},
                "input": {"prompt": prompt},
            }
            clip["file"] = files.output(f"media_{n}", f"{where}.media")
        clip["duration"] = scene["duration"]
        if kind == "image":
            clip["motion"] = "pan_zoom"
        clip["fit"] = "crop"
        script = scene["script"].strip()
        if script:
            nodes[f"narrate_{n}"] = {
                "type": "speech.synthesize",
                "params": dict(speech),
                "input": {"text": script},
            }
            clip["hold_for"] = f"n{n}"
            audio.append(
                {
                    "id": f"n{n}",
                    "file": files.output(f"narrate_{n}", f"{where}.script"),
                    "role": "narration",
                    "at": {"clip": f"s{n}", "offset": NARRATION_OFFSET},
                    "volume": 1.0,
                    "text": script,
                }
            )
        transition = scene["transition"]
        if n < len(scenes) and transition["type"] != "cut":
            clip["transition"] = {"type": transition["type"], "duration": transition["duration"]}
        video.append(clip)
    seconds = stated_seconds(scenes)
    music = project["music"]
    if music is not None:
        if "file_id" in music:
            index = files.literal(music["file_id"], "music.file_id")
        else:
            model = _model(catalog, configured, music.get("model"), "music.generate", "music.model")
            nodes["music"] = {
                "type": "music.generate",
                "params": {"model": model.id, **_music_params(model, seconds)},
                "input": {"prompt": music["prompt"]},
            }
            index = files.output("music", "music")
        audio.append(
            {"id": "m", "file": index, "role": "music", "at": 0, "volume": music["volume"], "loop": True}
        )
    narrated = any(a["role"] == "narration" for a in audio)
    caption = project["style"]["caption"]
    timeline: dict[str, Any] = {
        "version": 1,
        "format": {"width": width, "height": height, "fps": schema.FPS},
        "video": video,
        "audio": audio,
        "captions": {
            "from": "narration" if narrated else "none",
            "burn": bool(caption.get("burn", True)) and narrated,
            "srt": narrated,
            "max_chars": CAPTION_CHARS[fmt],
        },
        "style": {**caption_style(caption, brand), "size": caption.get("size", 0)},
        "loudness": {"target_lufs": TARGET_LUFS},
    }
    if logo_file_id is not None:
        timeline["watermark"] = {"file": files.literal(logo_file_id, "brand_id"), **WATERMARK}
    nodes[store.RENDER_NODE] = {
        "type": "video.render",
        "params": {"timeline": timeline},
        "input": {"file_ids": list(files.items)},
    }
    return Compiled(
        graph={"inputs": {}, "nodes": nodes},
        timeline=timeline,
        file_ids=list(files.items),
        origins=list(files.origins),
        seconds=seconds,
    )


class _Files:
    """The render's ``input.file_ids`` as it is built: each library file once, each node
    output where it is used."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.origins: list[str] = []

    def literal(self, file_id: str, origin: str) -> int:
        if file_id in self.items:
            return self.items.index(file_id)
        return self._add(file_id, origin)

    def output(self, node: str, origin: str) -> int:
        return self._add({"node": node, "output": 0}, origin)

    def _add(self, item: Any, origin: str) -> int:
        self.items.append(item)
        self.origins.append(origin)
        return len(self.items) - 1


def stated_seconds(scenes: list[dict[str, Any]]) -> float:
    """The video's length as the scenes state it: their durations, less each transition's
    overlap (narration longer than its scene makes the render longer)."""
    total = sum(float(s["duration"]) for s in scenes)
    overlap = sum(float(s["transition"]["duration"]) for s in scenes[:-1] if s["transition"]["type"] != "cut")
    return round(total - overlap, 3)


def caption_style(caption: dict[str, Any], brand: Brand | None) -> dict[str, str]:
    """Font and colours of the captions: the project's, else the brand's, else the house's."""
    patterns = {"font": FONT_FAMILY, "color": COLOR, "outline": COLOR}
    style = {}
    for key, default in HOUSE_STYLE.items():
        value = caption.get(key)
        if value is None and brand is not None:
            part, name = BRAND_STYLE[key]
            value = (getattr(brand, part) or {}).get(name)
        # A brand's font may be longer than a caption renderer's name limit: then the default.
        style[key] = value if isinstance(value, str) and patterns[key].fullmatch(value) else default
    return style


# -- model parameters --------------------------------------------------------------------------


def _speech_params(voice: dict[str, Any], catalog: Catalog, configured: frozenset[str]) -> dict[str, Any]:
    model = _model(catalog, configured, voice.get("model"), "speech.synthesize", "voice.model")
    params: dict[str, Any] = {"model": model.id}
    if voice.get("voice") is not None:
        params["voice"] = voice["voice"]
    try:
        checked_params(jobtypes.get("speech.synthesize"), params, catalog)
    except ValidationError as err:
        field = "voice.voice" if (err.field or "").startswith("params.voice") else "voice.model"
        raise ValidationError(f"{model.id}: {err.message}", field=field, code=err.code) from None
    return params


def _model(
    catalog: Catalog, configured: frozenset[str], model_id: str | None, job_type: str, field: str
) -> Model:
    """The model named at ``field``, or the default for ``job_type``; a model the catalog no
    longer offers is refused naming the field."""
    if model_id is None:
        return default_model(catalog, configured, job_type)
    try:
        return catalog.get(model_id, job_type)
    except ValidationError as err:
        raise ValidationError(err.message, field=field, code=err.code, details=dict(err.details)) from None


def _image_params(model: Model, width: int, height: int) -> dict[str, Any]:
    """The frame's size, as the model takes sizes: width and height, or the ``size`` of its
    list whose shape is nearest the frame's."""
    props = model.params
    if "width" in props and "height" in props:
        scale = min(
            1.0, *(props[k].get("maximum", 10**6) / v for k, v in (("width", width), ("height", height)))
        )
        return {"width": _fit(props["width"], width * scale), "height": _fit(props["height"], height * scale)}
    sizes = [s for s in props.get("size", {}).get("enum", []) if re.fullmatch(r"\d+x\d+", str(s))]
    if sizes:
        aspect = width / height

        def distance(size: str) -> float:
            w, h = (int(v) for v in size.split("x"))
            return abs(math.log((w / h) / aspect))

        return {"size": min(sizes, key=distance)}
    return {}


def _fit(prop: dict[str, Any], value: float) -> int:
    step = int(prop.get("multipleOf", 1))
    fitted = max(step, round(value / step) * step)
    return int(min(prop.get("maximum", fitted), max(prop.get("minimum", fitted), fitted)))


def _video_params(model: Model, fmt: str, seconds: float) -> dict[str, Any]:
    props = model.params
    params: dict[str, Any] = {}
    if fmt in props.get("aspect_ratio", {}).get("enum", []):
        params["aspect_ratio"] = fmt
    if "duration" in props:
        params["duration"] = _duration(props["duration"], seconds)
    return params


def _music_params(model: Model, seconds: float) -> dict[str, Any]:
    props = model.params
    params: dict[str, Any] = {}
    if "is_instrumental" in props:
        params["is_instrumental"] = True
    if "duration" in props:
        params["duration"] = _duration(props["duration"], seconds)
    return params


def _duration(prop: dict[str, Any], seconds: float) -> Any:
    """The model's duration value nearest ``seconds`` from above (its longest when none is
    long enough), as the model writes it (``5``, ``"5"``, ``"4s"``)."""
    if "enum" in prop:

        def number(value: Any) -> float:
            digits = re.sub(r"[^0-9.]", "", str(value))
            return float(digits) if digits else 0.0

        choices = sorted(prop["enum"], key=number)
        return next((v for v in choices if number(v) >= seconds), choices[-1])
    whole = math.ceil(seconds)
    low, high = prop.get("minimum", whole), prop.get("maximum", whole)
    value = min(high, max(low, whole))
    return int(value) if prop.get("type") == "integer" else value


# -- naming a refused graph's problems by the project's fields --------------------------------

_NODE = re.compile(r"^(narrate|media)_(\d+)$")
_ITEM = re.compile(r"file_ids\D*(\d+)")


def project_field(problem: dict[str, Any], compiled: Compiled) -> str:
    """The project field a problem of the compiled graph is about (``scenes[1].script``)."""
    node, field = problem.get("node"), problem.get("field") or ""
    if node is None:
        return "scenes"
    found = _NODE.match(node)
    if found is not None:
        where = f"scenes[{int(found.group(2)) - 1}]"
        if found.group(1) == "narrate":
            return "voice.voice" if field.startswith("params.voice") else (
                "voice.model" if field.startswith("params.model") else f"{where}.script"
            )  # fmt: skip
        return f"{where}.media.prompt" if field.startswith("input.prompt") else f"{where}.media"
    if node == "music":
        return "music"
    item = _ITEM.search(field)
    if item is not None and int(item.group(1)) < len(compiled.origins):
        return compiled.origins[int(item.group(1))]
    return "scenes"
