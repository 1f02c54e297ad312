"""The Twilio side: uvicorn's websockets-sansio server protocol with a fast path for text.

A call moves about 175 small text messages a second; through the stock protocol each costs
a frame object, a generator parser step, a read pause/resume pair and a ``write()`` system
call of its own. :class:`RelayServerProtocol` takes over only the plain case: a final,
masked text frame within the size limit is unmasked, UTF-8 decoded and queued for the app
in one step; a text frame from the app is framed and written directly; every write of one
event-loop turn leaves in one ``write()`` (media + mark = one system call); reading pauses
only when the app falls behind.

Every frame is judged at its header (see :mod:`.framing`): anything else (a fragment, a
binary or close frame, reserved bits, an unmasked frame, a declared length above the limit,
invalid UTF-8) is handed, header first, to the stock parser for the rest of the connection,
which refuses it exactly as it always does (1002, 1007, 1009). The differential test
(``tests/e2e/test_relay_differential.py``) holds the two to identical outcomes.

This subclasses uvicorn internals (``WebSocketsSansIOProtocol``): pyproject bounds uvicorn
to the minor versions tested, and ``VOICE_AGENT_RELAY_FAST_PATH=false`` serves the stock
protocol instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from voice_agent.voice.relay_sockets.asgi import RELAY_EXTENSION, CoalescingTransport
from voice_agent.voice.relay_sockets.framing import (
    CONTROL_LIMIT,
    PING,
    PONG,
    TEXT,
    apply_mask,
    frame_header,
    server_text_frame,
    size_limit,
)

__all__ = ["RelayServerProtocol"]

_OPEN = State.OPEN
_PAUSE_AT = 64  # queued messages before reading pauses (the app has fallen behind)
_RESUME_AT = 8
_FAST_CAP = 1 << 20  # without a configured limit, larger frames go to the stock parser


class RelayServerProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with a fast path for text messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast = False
        self._checked = False
        self._buffer = bytearray()
        self._max_size = size_limit(self.conn, _FAST_CAP)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    # Receiving ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._receive_fast(data)
            return
        super().data_received(data)
        if not self._checked and self.handshake_initiated:
            # The upgrade request arrives alone (uvicorn replays it): the parser now waits at
            # a frame boundary with nothing buffered, so whole frames may be handed over.
            self._checked = True
            self._fast = self.conn.parser_exc is None and not self.conn.reader.buffer

    def _receive_fast(self, data: bytes) -> None:
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        pos, end = 0, len(view)
        queue = self.queue
        max_size = self._max_size
        while pos < end:
            first = view[pos]
            if first != TEXT and first != PING and first != PONG:
                self._fall_back(view[pos:])
                return
            header = frame_header(view, pos, end)
            if header is None:
                if end - pos > 1 and not view[pos + 1] & 0x80:
                    self._fall_back(view[pos:])  # unmasked client frame: 1002 by the stock code
                    return
                break
            start, size = header
            if (
                not view[pos + 1] & 0x80
                or size > (max_size if first == TEXT else CONTROL_LIMIT)
                or not self.handshake_complete
                or self.close_sent
            ):
                self._fall_back(view[pos:])
                return
            stop = start + size
            if stop > end:
                break  # a frame of ours, its payload (within the limit) still arriving
            if first == TEXT:
                try:
                    text = apply_mask(view[start:stop], view[start - 4 : start]).decode()
                except UnicodeDecodeError:
                    self._fall_back(view[pos:])  # 1007 by the stock code
                    return
                queue.put_nowait({"type": "websocket.receive", "text": text})
            else:
                super().data_received(bytes(view[pos:stop]))  # ping/pong: the stock path
            pos = stop
        if view is buffer:
            del buffer[:pos]
        elif pos < end:
            buffer += view[pos:]
        if not self.read_paused and queue.qsize() >= _PAUSE_AT:
            self.read_paused = True
            self.transport.pause_reading()

    def _fall_back(self, rest: bytes | bytearray) -> None:
        """Hand this frame and everything after it to the stock parser, for good."""
        self._fast = False
        rest = bytes(rest)
        self._buffer.clear()
        super().data_received(rest)

    def send_receive_event_to_app(self) -> None:
        # The stock path pauses reading after every message and resumes on the next receive
        # (two event-loop calls per message); pause only when the app has fallen behind.
        read_paused = self.read_paused
        self.read_paused = True  # keeps the stock method from pausing
        super().send_receive_event_to_app()
        self.read_paused = read_paused
        if not read_paused and self.queue.qsize() >= _PAUSE_AT:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.qsize() <= _RESUME_AT:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    # Sending --------------------------------------------------------------------------------

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][RELAY_EXTENSION] = {
                "receive": self.receive,
                "send_text": self.send_text,
            }

    async def send_text(self, text: str) -> None:
        """Send one text message: framed and written here while the socket is plainly open."""
        if (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and self.conn.state is _OPEN
        ):
            self.transport.write(server_text_frame(text.encode()))
            return
        await super().send({"type": "websocket.send", "text": text})

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and message.get("bytes") is None:
            text = message.get("text")
            if text is not None:
                await self.send_text(text)
                return
        await super().send(message)
