"""Waiting in tests for something another task or process will make true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def poll(check: Callable[[], Any], timeout: float, interval: float = 0.005) -> Any:  # noqa: ASYNC109
    """Call ``check`` until it returns something truthy and return that; after ``timeout``
    seconds raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
