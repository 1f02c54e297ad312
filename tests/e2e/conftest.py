"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[True, False], ids=["fast-path", "stock-sockets"])
def relay_fast_path(request: pytest.FixtureRequest) -> bool:
    """Both ways a call's websockets can be served (``VOICE_AGENT_RELAY_FAST_PATH``): a test
    taking this fixture runs through the relay's fast paths and through the stock uvicorn and
    websockets implementations."""
    return bool(request.param)
