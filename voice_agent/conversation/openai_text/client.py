"""The OpenAI client of the text receptionist: one streamed ``POST /responses`` with a body we
encode, and the moment each request leaves noted.

``TurnStats`` separates the model's time from ours: the SDK's own request building (headers,
URL, options) is our process's work, so the model's share starts when the request is handed
to HTTP (``_prepare_request``, the SDK's documented per-request hook), not when the request is
made. The stamp is a context variable: turns of different conversations never mix.

The request goes through the client's generic ``post`` (the SDK's documented way to call an
endpoint with a body of one's own; auth, retries and the typed HTTP errors are the same as for
``responses.create``) with the body already JSON: ``responses.create`` first runs its runtime
param transform over a dict of every parameter the endpoint has, then the SDK encodes the body
again each round, tool schemas included. Ours is typed with the SDK's
``ResponseCreateParamsStreaming`` (mypy checks it), the tools' JSON is encoded once per process,
and the fake server validates the bytes with the same types.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import cached_property
from typing import TYPE_CHECKING, Any

from openai import AsyncAPIResponse, AsyncOpenAI
from openai.types.responses import FunctionToolParam
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming

if TYPE_CHECKING:
    import httpx2  # the SDK's own HTTP stack

SENT_AT: ContextVar[tuple[float, float] | None] = ContextVar("openai_text_sent_at", default=None)
"""(perf_counter, process_time) when this task's latest request was handed to HTTP."""

STREAM_UNPARSED = {"X-Stainless-Raw-Response": "stream"}
"""What the SDK's ``with_streaming_response`` sets: the body is streamed to us, not parsed."""


class TimedOpenAI(AsyncOpenAI):
    @cached_property
    def responses_url(self) -> str:
        """The endpoint as an absolute URL, joined once: a relative path is parsed and joined
        to ``base_url`` again on every request."""
        return f"{str(self.base_url).rstrip('/')}/responses"

    async def _prepare_request(self, request: httpx2.Request) -> None:
        await super()._prepare_request(request)
        SENT_AT.set((time.perf_counter(), time.process_time()))

    @asynccontextmanager
    async def stream_response(self, body: bytes) -> AsyncIterator[AsyncIterator[str]]:
        """``POST /responses`` with ``body`` (``encode_request``); yields the event stream's
        lines and closes the response after. HTTP errors raise the SDK's typed errors."""
        response = await self.post(
            self.responses_url,
            cast_to=AsyncAPIResponse[bytes],
            content=body,
            options={"headers": STREAM_UNPARSED},
        )
        try:
            yield response.iter_lines()
        finally:
            await response.close()


def encode_tools(tools: Sequence[FunctionToolParam]) -> str:
    """The tools' JSON, once: the same dozen schemas go with every request."""
    return json.dumps(list(tools), ensure_ascii=False, separators=(",", ":"))


def encode_request(params: ResponseCreateParamsStreaming, tools_json: str) -> bytes:
    """The request body: ``params`` (without ``tools``) with ``tools_json`` spliced in."""
    rest: dict[str, Any] = {key: value for key, value in params.items() if key != "tools"}
    head = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    return f'{head[:-1]},"tools":{tools_json}}}'.encode()
