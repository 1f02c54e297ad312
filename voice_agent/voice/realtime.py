"""The OpenAI Realtime session of one call, through the official SDK.

Hot-path events (audio in, audio out) go through the SDK connection's raw send/receive with
pre-built JSON, so a call costs a fraction of a millisecond per 20 ms frame; every other event
is built as a plain dict that matches the GA client-event schema exactly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from voice_agent.settings import Settings

JsonEvent = dict[str, Any]


def session_config(
    settings: Settings, instructions: str, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The GA ``session.update`` payload: μ-law both ways, VAD by setting, our tools."""
    if settings.realtime_vad == "semantic_vad":
        turn_detection: dict[str, Any] = {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    else:
        turn_detection = {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "realtime",
        "model": settings.realtime_model,
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": turn_detection,
                "transcription": {"model": settings.transcription_model},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": settings.realtime_voice},
        },
        "tools": tools,
        "tool_choice": "auto",
    }


class RealtimeLink:
    """One open Realtime connection: typed helpers over raw JSON sends, and raw events out."""

    def __init__(self, connection: AsyncRealtimeConnection) -> None:
        self._connection = connection

    async def send(self, event: JsonEvent) -> None:
        await self._connection.send_raw(json.dumps(event, ensure_ascii=False))

    async def append_audio(self, payload_b64: str) -> None:
        # base64 needs no JSON escaping: build the frame without json.dumps.
        await self._connection.send_raw(
            '{"type":"input_audio_buffer.append","audio":"' + payload_b64 + '"}'
        )

    async def update_session(self, session: dict[str, Any]) -> None:
        await self.send({"type": "session.update", "session": session})

    async def create_response(self, instructions: str | None = None) -> None:
        event: JsonEvent = {"type": "response.create"}
        if instructions:
            event["response"] = {"instructions": instructions}
        await self.send(event)

    async def function_output(self, call_id: str, output: str) -> None:
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )

    async def user_text(self, text: str) -> None:
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )

    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        await self.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    async def events(self) -> AsyncIterator[JsonEvent]:
        """Server events as dicts, until the connection closes."""
        while True:
            raw = await self._connection.recv_bytes()
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event

    async def close(self) -> None:
        await self._connection.close()


class RealtimeConnector:
    """Opens Realtime connections for calls; one client (and HTTP pool) per process."""

    def __init__(self, settings: Settings) -> None:
        if settings.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY is required for voice calls through OpenAI")
        self._client = AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            max_retries=0,
        )
        self._model = settings.realtime_model

    def connect(self) -> AbstractAsyncContextManager[AsyncRealtimeConnection]:
        # Base64 μ-law does not compress: permessage-deflate would only burn CPU per frame.
        return self._client.realtime.connect(  # type: ignore[return-value]
            model=self._model, websocket_connection_options={"compression": None}
        )

    async def close(self) -> None:
        await self._client.close()
