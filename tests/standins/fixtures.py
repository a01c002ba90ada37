"""pytest fixtures for the provider stand-ins.

Each server starts once per session; the function-scoped fixture resets it before the test, so
every test sees an empty log, no scripted faults and default settings. ``fal_fake`` also points
``fal_client`` at the fake for the duration of the test (RECIPES Recipe B).

Register with ``pytest_plugins = ["tests.standins.fixtures"]`` in the root conftest, or import
the fixtures into a test module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.bfl_fake import BFLFake
from tests.standins.fal_fake import FalFake, point_fal_client_at
from tests.standins.openai_fake import OpenAIFake


@pytest.fixture(scope="session")
def _openai_fake_server() -> Iterator[OpenAIFake]:
    with OpenAIFake() as fake:
        yield fake


@pytest.fixture(scope="session")
def _fal_fake_server() -> Iterator[FalFake]:
    with FalFake() as fake:
        yield fake


@pytest.fixture(scope="session")
def _bfl_fake_server() -> Iterator[BFLFake]:
    with BFLFake() as fake:
        yield fake


@pytest.fixture
def openai_fake(_openai_fake_server: OpenAIFake) -> Iterator[OpenAIFake]:
    """The OpenAI stand-in (key ``sk-test``); pass ``openai_fake.base_url`` to the SDK."""
    _openai_fake_server.reset()
    yield _openai_fake_server
    _openai_fake_server.reset()


@pytest.fixture
def fal_fake(_fal_fake_server: FalFake, monkeypatch: pytest.MonkeyPatch) -> Iterator[FalFake]:
    """The fal stand-in (key ``id:secret``), with ``fal_client`` pointed at it."""
    _fal_fake_server.reset()
    point_fal_client_at(_fal_fake_server.url, monkeypatch)
    yield _fal_fake_server
    _fal_fake_server.reset()


@pytest.fixture
def bfl_fake(_bfl_fake_server: BFLFake) -> Iterator[BFLFake]:
    """The BFL stand-in (``x-key: bfl-test-key``); bases ``url``, ``eu_url``, ``us_url``."""
    _bfl_fake_server.reset()
    yield _bfl_fake_server
    _bfl_fake_server.reset()
