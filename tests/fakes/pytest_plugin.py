"""Fixtures for the fake providers. Enable from the root conftest with
``pytest_plugins = ["tests.fakes.pytest_plugin"]``.

- ``fake_providers``: a fresh ``FakeServer`` (all four fakes, one loopback port) per test;
  ``fake_providers.state`` is its ``FakeState`` and ``fake_providers.env()`` the base URL settings.
- ``fake_state``: that server's ``FakeState`` (script behaviours, read ``requests`` / ``disconnects``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.scenario import FakeState
from tests.fakes.server import FakeServer


@pytest.fixture
async def fake_providers() -> AsyncIterator[FakeServer]:
    async with FakeServer() as server:
        yield server


@pytest.fixture
def fake_state(fake_providers: FakeServer) -> FakeState:
    return fake_providers.state
