"""The model catalog: which AI models faktry offers, and how.

The catalog is data (``pipelines/catalog.json``, or the file named by
``FAKTRY_CATALOG_PATH``): each model names its provider, the job types it serves, the
provider endpoint, the parameters it takes (JSON Schema properties), its price rule and the
size of queue it runs on. A provider whose key is not configured runs its models on the
offline ``local`` provider, so the zero-setup default can run every job type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
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
    #: Parameters the image-to-video endpoint does not take (the image sets the frame).
    image_only_drop: tuple[str, ...] = ()

    @property
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
class Catalog:
    models: dict[str, Model]
    offline: dict[str, str] = field(default_factory=dict)

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
                image_only_drop=tuple(raw.get("image_only_drop", ())),
            )
            if model.provider not in PROVIDERS:
                raise ValueError(f"catalog model {model.id}: unknown provider {model.provider!r}")
            models[model.id] = model
        offline = dict(data.get("offline", {}))
        for job_type, model_id in offline.items():
            if model_id not in models or job_type not in models[model_id].job_types:
                raise ValueError(f"catalog: offline model {model_id!r} does not serve {job_type}")
        return cls(models, offline)

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


@cache
def default_catalog(path: str = "") -> Catalog:
    return Catalog.load(path or None)
