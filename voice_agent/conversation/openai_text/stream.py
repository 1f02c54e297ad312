"""One streamed Responses round read into what the tool loop needs.

The SDK yields typed events; text deltas go to the listener as they arrive, a function call
announces its tool (the web chat's "typing" state), and the round's result is taken from the
final ``response.completed`` (its output is authoritative: complete arguments, the message
text). A stream that ends without it, or reports a failure, raises: the engine then lets the
offline receptionist answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

from voice_agent.conversation.streaming import TurnListener


class StreamFailed(RuntimeError):
    """The response failed, stopped short or the stream broke before ``response.completed``."""


@dataclass
class Round:
    response_id: str
    text: str
    calls: list[ResponseFunctionToolCall] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    """The response's items as input items (reasoning, messages, calls), for resending."""


async def read_round(
    events: AsyncIterator[ResponseStreamEvent], listener: TurnListener | None, *, lead: str = ""
) -> Round:
    """Consume one stream; ``lead`` is sent before this round's first text (a paragraph break)."""
    response: Response | None = None
    started = False
    async for event in events:
        if isinstance(event, ResponseTextDeltaEvent):
            if listener is not None:
                if not started and lead:
                    await listener.text(lead)
                started = True
                await listener.text(event.delta)
        elif isinstance(event, ResponseOutputItemAddedEvent):
            if isinstance(event.item, ResponseFunctionToolCall) and listener is not None:
                await listener.working(event.item.name)
        elif isinstance(event, ResponseCompletedEvent):
            response = event.response
            break
        elif isinstance(event, (ResponseFailedEvent, ResponseIncompleteEvent)):
            problem = event.response.error or event.response.incomplete_details
            raise StreamFailed(f"{event.type}: {problem}")
        elif isinstance(event, ResponseErrorEvent):
            raise StreamFailed(f"error event: {event.code or ''} {event.message}")
    if response is None:
        raise StreamFailed("the stream ended before response.completed")
    return _round(response)


def _round(response: Response) -> Round:
    texts: list[str] = []
    calls: list[ResponseFunctionToolCall] = []
    output: list[dict[str, Any]] = []
    for item in response.output:
        if isinstance(item, ResponseOutputMessage):
            texts.extend(part.text for part in item.content if part.type == "output_text")
        elif isinstance(item, ResponseFunctionToolCall):
            calls.append(item)
        elif not isinstance(item, ResponseReasoningItem):
            continue  # no other item kinds: only function tools are offered
        output.append(item.model_dump(mode="json", exclude_none=True))
    return Round(response.id, "".join(texts).strip(), calls, output)
