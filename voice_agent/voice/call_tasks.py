"""The background tasks of one running call, shared by both transports (the Media Streams bridge
and the SIP sideband): tool calls keyed by call id, helper tasks, and how the call ends when a
helper raises ``CallEnded`` or fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

logger = logging.getLogger(__name__)


class CallEnded(Exception):
    """Raised inside a call's task to end the call (hang-up, caller gone, fatal fault)."""


class CallTasks:
    """Mixin: ``_spawn`` a helper, end the call when one raises ``CallEnded`` or fails, and
    ``_settle_tools`` at the end (a tool already running, a booking say, finishes even if the
    caller hung up). The class using it sets ``_ending`` and ``_ended``."""

    _tool_timeout: float
    _ending: bool
    _ended: asyncio.Event

    def _init_tasks(self, tool_timeout: float) -> None:
        self._tool_timeout = tool_timeout
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}
        self._helpers: set[asyncio.Future[None]] = set()
        self._essential: set[asyncio.Future[None]] = set()

    async def _settle_tools(self) -> None:
        running: list[asyncio.Future[None]] = [
            t for t in (*self._tool_tasks.values(), *self._essential) if not t.done()
        ]
        if running:
            await asyncio.wait(running, timeout=self._tool_timeout)
            for task in running:
                task.cancel()
        helpers = list(self._helpers)
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, *running, return_exceptions=True)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._helpers.add(task)
        task.add_done_callback(self._helper_done)

    def _spawn_essential(self, coroutine: Awaitable[None]) -> None:
        """Work the call's end waits for (up to the tool timeout) instead of cancelling it, as
        for a running tool: a red flag's staff alarm must go out even if the caller hangs up."""
        task = asyncio.ensure_future(coroutine)
        self._essential.add(task)
        task.add_done_callback(self._essential_done)

    def _essential_done(self, task: asyncio.Future[None]) -> None:
        self._essential.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call work failed: %s", type(task.exception()).__name__)

    def _helper_done(self, task: asyncio.Future[None]) -> None:
        self._helpers.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, CallEnded):
            self._ending = True
            self._ended.set()
        elif exc is not None:
            logger.error("call helper failed: %s", type(exc).__name__)
            self._ended.set()
