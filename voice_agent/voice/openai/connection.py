"""The OpenAI Realtime session of one call, through the official SDK.

The SDK opens the connection (URL, auth headers, options) on a websockets connection of our
own class (:class:`~voice_agent.voice.relay_sockets.client.RelayClientConnection`, passed as the
SDK's ``websocket_connection_options["create_connection"]``), or websockets' stock one with
``VOICE_AGENT_RELAY_FAST_PATH=false``; either way with an 8 MiB message limit. The hot
events (caller audio out, model audio in) go straight through that websocket:
``input_audio_buffer.append`` is built as bytes around the base64 audio (which needs no JSON
escaping), and server events are read as text, parsed with ``json.loads`` and typed by
:mod:`voice_agent.voice.openai.events`. Every other
client event is a plain dict that matches the GA client-event schema exactly and goes through
the SDK's ``send_raw``.
"""

from __future__ import annotations

import json
from binascii import b2a_base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from voice_agent.settings import Settings
from voice_agent.voice.openai.events import ServerEvent, parse_server_event
from voice_agent.voice.relay_sockets import realtime_websocket_options

JsonEvent = dict[str, Any]
# scan_once is set by JSONDecoder.__init__ (the C scanner); typeshed does not declare it.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


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
    """One open Realtime connection: typed helpers over raw JSON sends, typed events out."""

    def __init__(self, connection: AsyncRealtimeConnection) -> None:
        self._connection = connection
        # The SDK connection's websocket; absent only if a future SDK renames it.
        self._socket: Any = getattr(connection, "_connection", None)

    async def send(self, event: JsonEvent) -> None:
        """Straight to the websocket, as the audio goes: the SDK's ``send_raw`` (3.x) runs each
        message through its reconnect queue and looks up the current task (~5% of the relay's
        CPU at a barge-in every 2 s), and a control event could then overtake audio sent
        directly, or the other way round. Without the socket, the SDK's own path."""
        data = json.dumps(event, ensure_ascii=False)
        if self._socket is not None:
            await self._socket.send(data.encode(), text=True)
        else:
            await self._connection.send_raw(data)

    async def append_audio(self, audio: bytes) -> None:
        """``input_audio_buffer.append`` with raw μ-law (base64 needs no JSON escaping)."""
        frame = (
            b'{"type":"input_audio_buffer.append","audio":"'
            + b2a_base64(audio, newline=False)
            + b'"}'
        )
        if self._socket is not None:
            await self._socket.send(frame, text=True)
        else:
            await self._connection.send_raw(frame.decode("ascii"))

    async def update_session(self, session: dict[str, Any]) -> None:
        await self.send({"type": "session.update", "session": session})

    async def create_response(self, instructions: str | None = None) -> None:
        event: JsonEvent = {"type": "response.create"}
        if instructions:
            event["response"] = {"instructions": instructions}
        await self.send(event)

    async def create_out_of_band_response(self, instructions: str) -> None:
        """A response spoken now but kept out of the conversation (no tools): a filler or a
        fixed line cannot then collide with a function call still waiting for its output.
        Its ``metadata.purpose`` marks it, so the bridge knows its audio is not the answer."""
        await self.send(
            {
                "type": "response.create",
                "response": {
                    "conversation": "none",
                    "instructions": instructions,
                    "tool_choice": "none",
                    "metadata": {"purpose": "line"},
                },
            }
        )

    async def cancel_response(self) -> None:
        await self.send({"type": "response.cancel"})

    async def clear_output_audio(self) -> None:
        """Stop what the caller hears now (SIP and WebRTC only: OpenAI plays the audio)."""
        await self.send({"type": "output_audio_buffer.clear"})

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

    async def system_text(self, text: str) -> None:
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "system",
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

    async def events(self) -> AsyncIterator[ServerEvent]:
        """The server events a call acts on, typed (:mod:`.events`), until the connection
        closes (``ConnectionClosed``); events it ignores and non-JSON frames are skipped."""
        socket = self._socket
        while True:
            try:
                raw = await (socket.recv(True) if socket is not None else self._recv_text())
                data, end = _scan(raw, 0)  # json.loads without its wrapper's regex matches
                if end != len(raw):
                    data = json.loads(raw)
            except (StopIteration, ValueError, RecursionError):  # not JSON, or not UTF-8
                continue
            if type(data) is dict:
                event = parse_server_event(data)
                if event is not None:
                    yield event

    async def _recv_text(self) -> str:
        return (await self._connection.recv_bytes()).decode()

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
        self._socket_options = realtime_websocket_options(settings.relay_fast_path)

    def connect(self) -> AbstractAsyncContextManager[AsyncRealtimeConnection]:
        # Base64 μ-law does not compress: permessage-deflate would only burn CPU per frame.
        options: Any = dict(self._socket_options)
        return self._client.realtime.connect(
            model=self._model, websocket_connection_options=options
        )

    async def close(self) -> None:
        await self._client.close()
