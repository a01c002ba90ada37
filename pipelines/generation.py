"""Generation jobs: the providers a process can call, and the gate in front of them.

`Generation` is built once per process at a composition root (`build`): the catalog, a
provider per configured key (and always the offline ``local`` one), each provider's
concurrency budget shared by every worker through Redis, and the circuit breakers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from faktry.config import Settings
from pipelines.catalog import Catalog, default_catalog
from pipelines.providers.base import Provider
from pipelines.providers.breaker import CircuitBreaker
from pipelines.providers.local import LocalProvider
from quotas.ratelimit import RunningSlots

DEFAULT_BUDGETS = {"openai": 20, "fal": 10, "bfl": 24, "local": 0}


@dataclass
class Generation:
    catalog: Catalog
    providers: dict[str, Provider]
    #: Providers with a key: models of the others run on ``local``.
    configured: frozenset[str]
    budgets: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    slots: RunningSlots | None = None
    breaker: CircuitBreaker | None = None
    poll_seconds: float = 2.0

    def budget_key(self, provider: str) -> str:
        return f"provider:{provider}"


def configured_providers(settings: Settings) -> frozenset[str]:
    keys = {"openai": settings.openai_api_key, "fal": settings.fal_key, "bfl": settings.bfl_api_key}
    return frozenset(name for name, key in keys.items() if key)


def budgets_from(settings: Settings) -> dict[str, int]:
    if not settings.provider_budgets.strip():
        return dict(DEFAULT_BUDGETS)
    data: Any = json.loads(settings.provider_budgets)
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise ValueError("FAKTRY_PROVIDER_BUDGETS must be a JSON object of provider to a whole number")
    return {**DEFAULT_BUDGETS, **data}


def build(settings: Settings, client: redis.Redis | None) -> Generation:
    configured = configured_providers(settings)
    providers: dict[str, Provider] = {"local": LocalProvider(timeout=settings.provider_timeout)}
    if "openai" in configured:
        from pipelines.providers.openai import OpenAIProvider

        providers["openai"] = OpenAIProvider(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.provider_timeout,
        )
    if "fal" in configured:
        from pipelines.providers import fal

        fal.configure(
            queue_url=settings.fal_queue_url, rest_url=settings.fal_rest_url, cdn_url=settings.fal_cdn_url
        )
        providers["fal"] = fal.FalProvider(
            key=settings.fal_key,
            timeout=settings.provider_timeout,
            max_output_bytes=settings.max_provider_output_bytes,
        )
    if "bfl" in configured:
        from pipelines.providers.bfl import BFLProvider

        providers["bfl"] = BFLProvider(
            api_key=settings.bfl_api_key,
            base_url=settings.bfl_base_url,
            eu_base_url=settings.bfl_eu_base_url,
            timeout=settings.provider_timeout,
        )
    return Generation(
        catalog=default_catalog(),
        providers=providers,
        configured=configured,
        budgets=budgets_from(settings),
        slots=RunningSlots(client, settings.redis_namespace) if client is not None else None,
        breaker=CircuitBreaker(
            client,
            settings.redis_namespace,
            failures=settings.breaker_failures,
            window=settings.breaker_window_seconds,
            cooldown=settings.breaker_cooldown_seconds,
        )
        if client is not None
        else None,
        poll_seconds=settings.provider_poll_seconds,
    )
