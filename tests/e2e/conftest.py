"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.browser import chromium


@pytest.fixture(params=[True, False], ids=["fast-path", "stock-sockets"])
def relay_fast_path(request: pytest.FixtureRequest) -> bool:
    """Both ways a call's websockets can be served (``VOICE_AGENT_RELAY_FAST_PATH``): a test
    taking this fixture runs through the relay's fast paths and through the stock uvicorn and
    websockets implementations."""
    return bool(request.param)


@pytest.fixture
def browser_window() -> tuple[int, int]:
    """The browser's window size; a module overrides it for its pages and screenshots."""
    return (1280, 900)


@pytest.fixture
def browser(browser_window: tuple[int, int]) -> Iterator[object]:
    """Headless Chromium for one test (a module using it is marked ``needs_chromium``)."""
    with chromium(*browser_window) as driver:
        yield driver
