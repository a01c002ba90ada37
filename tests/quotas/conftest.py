"""Fixtures of the quota and billing tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stripe_fake import StripeFake


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    """The Stripe stand-in, served on a free loopback port for one test."""
    fake = StripeFake().start()
    yield fake
    fake.stop()
