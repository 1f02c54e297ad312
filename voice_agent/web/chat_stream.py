"""``POST /api/chat/stream``: one web chat turn as server-sent events, for the /chat page.

The same body, token or loopback rule, body limit and per-client rate as ``POST /api/chat``
(which stays for clients that want one JSON answer). Events, in order:

- ``typing`` ``{"tool": null | name}``: the receptionist is working (at once, and whenever a
  tool starts), so a slow search or a clinic backend's wait never looks like a dead page;
- ``delta`` ``{"text": …}``: more of the OpenAI reply, as it is written;
- ``discard`` ``{}``: drop the text shown so far (OpenAI failed; the offline receptionist
  answers instead);
- ``reply``: the same JSON as ``/api/chat`` (the whole text, offers, the appointment), last;
- ``error`` ``{"detail": …}``: the turn could not be answered at all.

The turn runs in its own task: a browser that goes away mid-turn does not cut a booking short,
and the conversation is saved as usual.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from voice_agent.conversation.engine import ConversationService
from voice_agent.logging_setup import current_call
from voice_agent.web.chat import ChatAccess, ChatRequest, ConversationsDep

logger = logging.getLogger(__name__)
router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No cache or proxy buffering between the turn and the page."""


def sse_event(*, event: str, data: dict[str, Any]) -> str:
    """One server-sent event on the wire (``event:`` and one ``data:`` line of JSON). Written
    out rather than taken from ``fastapi.sse``, which needs a FastAPI far above our floor."""
    return (
        f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"
    )


class QueueListener:
    """A ``TurnListener`` that turns what the engine hears into events for one response."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[str | None] = asyncio.Queue()

    async def text(self, delta: str) -> None:
        await self.events.put(sse_event(event="delta", data={"text": delta}))

    async def working(self, tool: str) -> None:
        await self.events.put(sse_event(event="typing", data={"tool": tool}))

    async def discard(self) -> None:
        await self.events.put(sse_event(event="discard", data={}))


@router.post("/api/chat/stream")
async def api_chat_stream(
    payload: ChatRequest, conversations: ConversationsDep, _: ChatAccess, request: Request
) -> StreamingResponse:
    """One chat turn, streamed (see the module docstring for the events)."""
    current_call.set(f"web:{payload.session_id}")
    listener = QueueListener()
    turn = asyncio.create_task(_turn(conversations, payload, listener))
    running: set[asyncio.Task[None]] = _running(request)
    running.add(turn)  # kept until done, even when the browser leaves
    turn.add_done_callback(running.discard)
    return StreamingResponse(_events(listener), media_type="text/event-stream", headers=SSE_HEADERS)


async def _events(listener: QueueListener) -> AsyncIterator[str]:
    yield sse_event(event="typing", data={"tool": None})
    while (event := await listener.events.get()) is not None:
        yield event


async def _turn(
    conversations: ConversationService, payload: ChatRequest, listener: QueueListener
) -> None:
    try:
        reply = await conversations.handle(
            "web",
            payload.session_id,
            payload.text,
            phone=payload.phone,
            language=payload.language,
            listener=listener,
        )
        await listener.events.put(sse_event(event="reply", data=reply.public()))
    except Exception:
        logger.exception("web chat turn failed")
        detail = {"detail": "the receptionist could not answer; please send it again"}
        await listener.events.put(sse_event(event="error", data=detail))
    finally:
        await listener.events.put(None)


def _running(request: Request) -> set[asyncio.Task[None]]:
    running = getattr(request.app.state, "chat_turns", None)
    if running is None:
        running = request.app.state.chat_turns = set()
    return running
