"""One streamed Responses round read into what the tool loop needs.

The SDK sends the request (auth, retries, HTTP errors as exceptions); the event stream is read
here from its lines. The SDK's own stream would build a typed model of every event by
validating it against the union of ~60 event types: about 0.7 ms per text delta and 10 ms per
``response.created``/``in_progress``/``completed`` (they echo the 12 tool schemas) on the loaded
test machine, three such events per request, all on the call path. Here only what the loop
uses is read: text deltas go to the listener as they arrive, a function call announces its
tool (the web chat's "typing" state), and the round's result comes from the
``response.completed`` output (complete arguments and text); the function calls in it are
validated with the SDK's ``ResponseFunctionToolCall``. A stream that ends without it, reports a
failure or carries an unreadable event raises: the engine then lets the offline receptionist
answer. The stream is read to its end after ``response.completed`` (the server ends it there,
with the chunked body's last chunk), as the SDK's own stream does: a response closed before its
body ended cannot go back to the connection pool, and every request would open a new
connection (a TCP and TLS handshake to OpenAI each round).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import ResponseFunctionToolCall
from pydantic import ValidationError

from voice_agent.conversation.streaming import TurnListener


class StreamFailed(RuntimeError):
    """The response failed, stopped short, or the stream broke before ``response.completed``."""


@dataclass
class Round:
    response_id: str
    text: str
    calls: list[ResponseFunctionToolCall] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    """The response's items as input items (reasoning, messages, calls), for resending."""


UNREAD_EVENTS = frozenset({"response.created", "response.in_progress"})
"""Events named in their ``event:`` line whose data is not decoded: nothing in them is used, and
each echoes the request's instructions and tool schemas (the largest JSON of a round)."""


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON ``data`` of each server-sent event (WHATWG framing: ``data:`` lines up to a
    blank line; ``id:`` and comments carry nothing the payload lacks). An event whose
    ``event:`` line names one of ``UNREAD_EVENTS`` is skipped without decoding its data."""
    data: list[str] = []
    name = ""
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif not line and data:
            payload = "\n".join(data)
            data = []
            skip, name = name in UNREAD_EVENTS, ""
            if skip:
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                raise StreamFailed("an event that is not JSON") from None
            if not isinstance(event, dict):
                raise StreamFailed("an event that is not a JSON object")
            yield event


async def read_round(
    lines: AsyncIterator[str], listener: TurnListener | None, *, lead: str = ""
) -> Round:
    """Consume one stream; ``lead`` is sent before this round's first text (a paragraph break)."""
    started = False
    found: Round | None = None
    async for event in sse_events(lines):
        if found is not None:
            continue  # nothing follows response.completed; read to the end (see the docstring)
        kind = event.get("type")
        try:
            if kind == "response.output_text.delta":
                if listener is not None:
                    if not started and lead:
                        await listener.text(lead)
                    started = True
                    await listener.text(str(event["delta"]))
            elif kind == "response.output_item.added":
                item = event["item"]
                if item.get("type") == "function_call" and listener is not None:
                    await listener.working(str(item["name"]))
            elif kind == "response.completed":
                found = _round(event["response"])
            elif kind in ("response.failed", "response.incomplete"):
                response = event["response"]
                problem = response.get("error") or response.get("incomplete_details")
                raise StreamFailed(f"{kind}: {problem}")
            elif kind == "error":
                raise StreamFailed(f"error event: {event.get('code') or ''} {event.get('message')}")
        except (KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise StreamFailed(f"malformed {kind} event: {exc!r}") from None
    if found is None:
        raise StreamFailed("the stream ended before response.completed")
    return found


def _round(response: dict[str, Any]) -> Round:
    texts: list[str] = []
    calls: list[ResponseFunctionToolCall] = []
    output: list[dict[str, Any]] = []
    for item in response["output"]:
        kind = item.get("type")
        if kind == "message":
            texts.extend(
                part["text"]
                for part in item.get("content", [])
                if part.get("type") == "output_text"
            )
        elif kind == "function_call":
            calls.append(ResponseFunctionToolCall.model_validate(item))
        elif kind != "reasoning":
            continue  # no other item kinds: only function tools are offered
        output.append(item)
    return Round(str(response["id"]), "".join(texts).strip(), calls, output)
