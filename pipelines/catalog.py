"""The model catalog: which AI models faktry offers, and how.

The catalog is data (``pipelines/catalog.json``, or the file named by
``FAKTRY_CATALOG_PATH``): each model names its provider, the job types it serves, the
provider endpoint, the parameters it takes (JSON Schema properties), its price rule and the
size of queue it runs on. A provider whose key is not configured runs its models on the
offline ``local`` provider, so the zero-setup default can run every job type.

The catalog also holds what people read beside the machine names: a human name and a
one-line summary for each job type, a name for each transcode preset and each model, and
the job first offered for each kind of file. The API keeps the machine names (``hls``,
``video.transcode``); pages show both (`Labels`). Download names of outputs are made from
the source file's name and the job (`output_name`): ``clip-480p.mp4``, ``clip-hls.zip``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from faktry.errors import ValidationError

DEFAULT_PATH = Path(__file__).with_name("catalog.json")
PROVIDERS = ("openai", "fal", "bfl", "local")


@dataclass(frozen=True)
class Model:
    id: str
    provider: str
    job_types: tuple[str, ...]
    endpoint: dict[str, Any]
    params: dict[str, Any]
    price: dict[str, Any]
    queue_size: str
    description: str
    #: What people call it ("GPT Image 1"); the id stays the machine name.
    name: str = ""
    #: Parameters the image-to-video endpoint does not take (the image sets the frame).
    image_only_drop: tuple[str, ...] = ()

    @cached_property  # built once: the params check keeps a validator per schema
    def params_schema(self) -> dict[str, Any]:
        props = {"model": {"type": "string", "const": self.id}, **self.params}
        return {"type": "object", "properties": props, "required": ["model"], "additionalProperties": False}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "model",
            "provider": self.provider,
            "job_types": list(self.job_types),
            "description": self.description,
            "params": self.params,
            "price": self.price,
            "queue": f"{self.provider}.{self.queue_size}",
        }


@dataclass(frozen=True)
class Labels:
    """Names for people: ``job_types`` maps a job type to ``{"name", "summary", "suffix"}``,
    ``presets`` a transcode preset to ``{"name", "suffix"}`` (the suffix goes into download
    names), ``default_job`` a file kind to the job type first offered for it."""

    job_types: dict[str, dict[str, str]] = field(default_factory=dict)
    presets: dict[str, dict[str, str]] = field(default_factory=dict)
    default_job: dict[str, str] = field(default_factory=dict)

    def job_type_name(self, job_type: str) -> str:
        return self.job_types.get(job_type, {}).get("name") or job_type


@dataclass(frozen=True)
class Catalog:
    models: dict[str, Model]
    offline: dict[str, str] = field(default_factory=dict)
    labels: Labels = field(default_factory=Labels)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        data = json.loads(Path(path or DEFAULT_PATH).read_text())
        models = {}
        for raw in data["models"]:
            model = Model(
                id=raw["id"],
                provider=raw["provider"],
                job_types=tuple(raw["job_types"]),
                endpoint=raw.get("endpoint", {}),
                params=raw.get("params", {}),
                price=raw["price"],
                queue_size=raw.get("queue_size", "small"),
                description=raw.get("description", ""),
                name=raw.get("name") or raw["id"],
                image_only_drop=tuple(raw.get("image_only_drop", ())),
            )
            if model.provider not in PROVIDERS:
                raise ValueError(f"catalog model {model.id}: unknown provider {model.provider!r}")
            models[model.id] = model
        offline = dict(data.get("offline", {}))
        for job_type, model_id in offline.items():
            if model_id not in models or job_type not in models[model_id].job_types:
                raise ValueError(f"catalog: offline model {model_id!r} does not serve {job_type}")
        labels = Labels(
            job_types={k: dict(v) for k, v in data.get("job_types", {}).items()},
            presets={k: dict(v) for k, v in data.get("presets", {}).items()},
            default_job=dict(data.get("default_job", {})),
        )
        return cls(models, offline, labels)

    def for_type(self, job_type: str) -> list[Model]:
        return [m for m in self.models.values() if job_type in m.job_types]

    def get(self, model_id: Any, job_type: str) -> Model:
        """The model, or a 422 naming ``params.model`` and listing the models of this type."""
        known = sorted(m.id for m in self.for_type(job_type))
        model = self.models.get(model_id) if isinstance(model_id, str) else None
        if model is None or job_type not in model.job_types:
            raise ValidationError(
                f"unknown model {model_id!r} for {job_type}; models: {', '.join(known)}",
                field="params.model",
                code="unknown_model",
                details={"known_models": known},
            )
        return model

    def runs_on(self, model: Model, configured: frozenset[str], job_type: str) -> tuple[str, Model]:
        """The provider that will run ``model`` and the model it runs: the offline model of
        the job type when the model's provider has no key configured."""
        if model.provider == "local" or model.provider in configured:
            return model.provider, model
        fallback = self.models[self.offline[job_type]]
        return "local", fallback

    def works_here(self, model: Model, configured: frozenset[str]) -> bool:
        """Whether the model itself runs here, rather than the offline stand-in in its place."""
        return model.provider == "local" or model.provider in configured

    def default_model(self, job_type: str, configured: frozenset[str]) -> Model | None:
        """The model a form offers first: the first in catalog order that really runs here
        (a provider with a key, else the offline model itself), never one that would quietly
        run on the stand-in."""
        working = [m for m in self.for_type(job_type) if self.works_here(m, configured)]
        hosted = [m for m in working if m.provider != "local"]
        first = hosted or working
        return first[0] if first else None

    def page_labels(self, configured: frozenset[str]) -> dict[str, Any]:
        """What the job form shows beside the machine names: job types, presets, model names,
        the default job per file kind, the default model per job type here and the offline
        model standing in for each generative job type."""
        defaults = {}
        for job_type in self.offline:
            model = self.default_model(job_type, configured)
            if model is not None:
                defaults[job_type] = model.id
        return {
            "job_types": self.labels.job_types,
            "presets": {k: v.get("name", k) for k, v in self.labels.presets.items()},
            "models": {m.id: m.name for m in self.models.values()},
            "default_job": self.labels.default_job,
            "default_model": defaults,
            "stand_in": dict(self.offline),
            # What download names add after the source's name (see `output_name`).
            "suffixes": {
                "job_types": {k: v.get("suffix", "") for k, v in self.labels.job_types.items()},
                "presets": {k: v.get("suffix", "") for k, v in self.labels.presets.items()},
                "plain": sorted(_PLAIN_OUTPUTS),
            },
        }


#: What a download name keeps of a name: letters, digits, "-" and "_"; the rest becomes "-".
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _stem(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    return _UNSAFE.sub("-", stem).strip("-") or "file"


def output_name(
    labels: Labels,
    *,
    source: str | None,
    job_type: str,
    params: dict[str, Any],
    output: str,
    extension: str,
) -> str:
    """The name an output downloads as: the source file's name without its extension, what
    the job made (the preset of a transcode: ``480p``, ``hls``) and the extension, e.g.
    ``clip-480p.mp4``, ``clip-hls.zip``; a generated output (no source file) is named after
    its job alone (``image.png``). Where one job makes several outputs of one extension, the
    output's own name tells them apart (``clip-reframed-9x16.mp4``)."""
    suffix = labels.job_types.get(job_type, {}).get("suffix", "")
    if job_type == "video.transcode":
        suffix = labels.presets.get(str(params.get("preset", "")), {}).get("suffix", "")
    extra = output.removeprefix("video_")
    if extra in _PLAIN_OUTPUTS or extra.startswith("captions") or extra == suffix:
        extra = ""
    parts = [_stem(source)] if source else []
    parts += [_UNSAFE.sub("-", p).strip("-") for p in (suffix, extra) if p]
    stem = "-".join(p for p in parts if p) or "output"
    ext = _UNSAFE.sub("", extension.lstrip("."))
    return f"{stem}.{ext}" if ext else stem


#: Output names that say no more than the job does.
_PLAIN_OUTPUTS = frozenset(
    {"", "media", "image", "video", "audio", "output", "subtitles", "thumbnail", "normalize"}
)


@cache
def default_catalog(path: str = "") -> Catalog:
    return Catalog.load(path or None)
