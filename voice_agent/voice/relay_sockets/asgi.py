"""Pieces of the server fast path that touch no uvicorn internals: one write per loop turn,
and the bridge's view of the Twilio websocket (straight to the protocol when it is ours)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect

__all__ = ["RELAY_EXTENSION", "AsgiTextSocket", "CoalescingTransport"]

RELAY_EXTENSION = "voice_agent.relay"
"""ASGI scope extension: ``{"receive": …, "send_text": …}`` straight to the protocol."""


class CoalescingTransport:
    """An asyncio transport whose writes during one event-loop turn go out as one write."""

    __slots__ = ("_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class AsgiTextSocket:
    """A Starlette websocket spoken to through its ASGI callables, not its wrapper methods.

    With :class:`~.server.RelayServerProtocol` serving, ``receive``/``send_text`` go straight
    to the protocol (the relay extension in the scope); under any other server (the stock
    protocol when the fast path is off), to the raw ASGI ``receive``/``send`` the websocket
    was built with. Only for an accepted websocket.
    """

    __slots__ = ("_receive", "_send", "_send_text", "_websocket")

    def __init__(self, websocket: Any) -> None:
        self._websocket = websocket
        extension = websocket.scope.get("extensions", {}).get(RELAY_EXTENSION)
        if extension is not None:
            self._receive: Callable[[], Awaitable[Any]] = extension["receive"]
            self._send_text: Callable[[str], Awaitable[None]] = extension["send_text"]
        else:
            self._receive = websocket._receive
            self._send = websocket._send
            self._send_text = self._asgi_send_text

    async def receive_text(self) -> str:
        """The next text message; raises ``WebSocketDisconnect`` once the peer is gone."""
        message = await self._receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            if text is not None:
                return text
            # Twilio sends text only; a binary frame reaches the bridge as a bad frame.
            return bytes(message.get("bytes") or b"").decode(errors="replace")
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))

    async def send_text(self, data: str) -> None:
        await self._send_text(data)

    async def _asgi_send_text(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._websocket.close(code, reason)
