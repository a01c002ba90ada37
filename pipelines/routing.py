"""Which queue a job goes to. One pure function, so policy changes in one place.

Queue names are ``<provider>.<size>``: the provider decides which workers can run the job
(``local`` for faktry's own media work and the offline models; ``openai``, ``fal``, ``bfl``
for generation), the size keeps short jobs from waiting behind long ones. A generation
job's size comes from its model in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

SMALL = "small"
LARGE = "large"


@dataclass(frozen=True)
class RoutingLimits:
    large_input_bytes: int
    large_input_seconds: float


def route(*, provider: str, input_bytes: int, input_seconds: float | None, limits: RoutingLimits) -> str:
    large = input_bytes >= limits.large_input_bytes or (
        input_seconds is not None and input_seconds >= limits.large_input_seconds
    )
    return f"{provider}.{LARGE if large else SMALL}"


PROVIDERS = ("local", "openai", "fal", "bfl")


def all_queues(providers: tuple[str, ...] = PROVIDERS) -> list[str]:
    return [f"{p}.{size}" for p in providers for size in (SMALL, LARGE)]
