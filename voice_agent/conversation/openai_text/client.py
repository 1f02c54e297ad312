"""The OpenAI client of the text receptionist, with the moment each request leaves noted.

``TurnStats`` separates the model's time from ours: the SDK's own request building (param
transform, JSON) is our process's work, so the model's share starts when the request is handed
to HTTP (``_prepare_request``, the SDK's documented per-request hook), not when ``create`` is
called. The stamp is a context variable: turns of different conversations never mix.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

from openai import AsyncOpenAI

if TYPE_CHECKING:
    import httpx2  # the SDK's own HTTP stack

SENT_AT: ContextVar[tuple[float, float] | None] = ContextVar("openai_text_sent_at", default=None)
"""(perf_counter, process_time) when this task's latest request was handed to HTTP."""


class TimedOpenAI(AsyncOpenAI):
    async def _prepare_request(self, request: httpx2.Request) -> None:
        await super()._prepare_request(request)
        SENT_AT.set((time.perf_counter(), time.process_time()))
