"""Which queue a job goes to. One pure function, so policy changes in one place.

Queue names are ``<provider>.<size>``: the provider decides which workers can run the job
(``local`` for faktry's own media work), the size keeps short jobs from waiting behind
long ones.
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


def all_queues(providers: tuple[str, ...] = ("local",)) -> list[str]:
    return [f"{p}.{size}" for p in providers for size in (SMALL, LARGE)]
