"""Generation tests run the real SDKs against the provider stand-ins over loopback.

``settings`` here points every provider at its stand-in, so ``runtime``, ``app``, ``client``
and ``worker`` (from the root conftest) all speak to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faktry.config import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_namespace: str, openai_fake, fal_fake, bfl_fake) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        redis_namespace,
        openai_api_key="sk-test",
        openai_base_url=openai_fake.base_url,
        fal_key="id:secret",
        fal_queue_url=fal_fake.url,
        fal_rest_url=fal_fake.url,
        fal_cdn_url=fal_fake.url,
        bfl_api_key="bfl-test-key",
        bfl_base_url=bfl_fake.url,
        bfl_eu_base_url=bfl_fake.eu_url,
        provider_poll_seconds=0.05,
        provider_timeout=5.0,
        breaker_failures=3,
        breaker_window_seconds=30.0,
        breaker_cooldown_seconds=1.0,
    )
