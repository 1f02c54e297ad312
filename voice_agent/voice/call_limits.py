"""The limits of one running call, shared by both transports (the Media Streams bridge and the
SIP sideband): the idle prompt, the goodbye after a second silence, and the maximum length (a
goodbye, then a hang-up 30 s later whatever happens).

The watchdog sleeps until the next moment a limit could be reached, not on a fixed tick: a call
that talks wakes it about once per idle period instead of twice a second (at a hundred calls the
tick alone was a visible share of the SIP transport's CPU).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from voice_agent.settings import Settings
from voice_agent.store.tables import CallOutcome
from voice_agent.voice.call_tasks import CallEnded, CallTasks
from voice_agent.voice.lines import VoiceLines

ActionKind = Literal["hangup", "transfer", "emergency"]

HARD_STOP_AFTER = 30.0
"""Seconds after the maximum length's goodbye before the call is hung up regardless."""
BUSY_RECHECK = 0.5
"""While the model speaks or a tool runs at the idle deadline, look again this much later."""
LONGEST_SLEEP = 5.0
"""The watchdog never sleeps longer than this (a clock set back, settings changed in a test)."""


@dataclass
class PendingAction:
    """What the call does once the words before it have been heard: hang up, transfer, alert."""

    kind: ActionKind
    summary: str = ""


@dataclass
class ResponseState:
    """What one model response contained, to decide what happens after it."""

    function_calls: list[str] = field(default_factory=list)
    had_audio: bool = False
    out_of_band: bool = False


class CallLimits(CallTasks, ABC):
    """Mixin: ``_touch`` on activity, ``_watchdog`` as one of the call's tasks. The class using
    it provides the state below, ``_busy`` (the model speaking, a tool running), ``_hang_up_now``
    and ``_speak``."""

    settings: Settings
    clock: Callable[[], float]
    lines: VoiceLines
    outcome: CallOutcome
    _started: float
    _last_activity: float
    _idle_prompted: bool
    _pending: PendingAction | None
    _act_after_next_response: bool

    @abstractmethod
    def _busy(self) -> bool:
        """The model is speaking or being heard, or a tool runs: not idle."""

    @abstractmethod
    async def _hang_up_now(self) -> None:
        """End the call now (the maximum length is long past)."""

    @abstractmethod
    def _speak(self, instructions: str | None, *, tools: bool = True) -> Awaitable[None]:
        """Ask the model for a response (``tools=False``: out of band)."""

    def _touch(self, *, caller: bool = True) -> None:
        """Something happened on the call; the idle clock restarts from now."""
        self._last_activity = self.clock()
        if caller:
            self._idle_prompted = False

    async def _watchdog(self) -> None:
        max_length = self.settings.max_call_seconds
        warned_length = False
        while True:
            now = self.clock()
            idle_at = self._last_activity + self.settings.idle_timeout_seconds
            length_at = self._started + max_length + (HARD_STOP_AFTER if warned_length else 0)
            await asyncio.sleep(min(max(min(idle_at, length_at) - now, 0.05), LONGEST_SLEEP))
            now = self.clock()
            if now - self._started > max_length + HARD_STOP_AFTER:
                self.outcome = CallOutcome.timed_out
                self._ending = True
                await self._hang_up_now()
                raise CallEnded
            if not warned_length and now - self._started > max_length:
                warned_length = True
                self.outcome = CallOutcome.timed_out
                self._say_then_hang_up(self.lines.get("max_length_goodbye"))
                continue
            if now - self._last_activity < self.settings.idle_timeout_seconds:
                continue
            if self._busy():
                await asyncio.sleep(BUSY_RECHECK)
                continue
            self._last_activity = now
            if not self._idle_prompted:
                self._idle_prompted = True
                self._spawn(self._speak(self.lines.get("idle_prompt"), tools=False))
            else:
                self.outcome = CallOutcome.timed_out
                self._say_then_hang_up(self.lines.get("idle_goodbye"))

    def _say_then_hang_up(self, instructions: str) -> None:
        self._pending = PendingAction("hangup", "limit")
        self._act_after_next_response = True
        self._spawn(self._speak(instructions, tools=False))


__all__ = ["ActionKind", "CallLimits", "PendingAction", "ResponseState"]
