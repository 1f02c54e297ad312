"""The OpenAI side: a websockets ``ClientConnection`` with a fast path for text messages.

The OpenAI SDK opens the Realtime socket with this class (``create_connection`` in its
``websocket_connection_options``). A final, unmasked text frame from the server within the
size limit is UTF-8 decoded on arrival and goes to a plain deque that :meth:`recv` reads;
text sends are masked and written directly. Every frame is judged at its header (see
:mod:`.framing`): anything else (a fragment, a binary or close frame, reserved bits, a masked
frame, a declared length above the limit, invalid UTF-8) is handed, header first, to
websockets for the rest of the connection, which fails it exactly as it always does (1002,
1007, 1009): invalid UTF-8 surfaces as a 1007 close and ``ConnectionClosedError``, never as
a ``UnicodeDecodeError``. The differential test holds the two to identical outcomes.

This subclasses websockets internals (``data_received``, ``send_in_progress``, the sans-I/O
reader): pyproject bounds websockets to the minor versions tested, and
``VOICE_AGENT_RELAY_FAST_PATH=false`` uses the stock connection instead.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from voice_agent.voice.relay_sockets.framing import (
    CONTROL_LIMIT,
    PING,
    PONG,
    TEXT,
    client_text_frame,
    frame_header,
    size_limit,
)

try:
    from websockets.exceptions import ConcurrencyError
except ImportError:  # pragma: no cover - websockets < 14
    ConcurrencyError = RuntimeError  # type: ignore[misc,assignment]

__all__ = ["RelayClientConnection"]

_OPEN = State.OPEN
_PAUSE_AT = 64  # messages waiting in the deque before reading pauses
_RESUME_AT = 8
_MASKS = 4096  # bytes of os.urandom drawn at once for client frame masks
_FAST_CAP = 16 << 20  # without a configured limit, larger frames go to websockets
_HANDSHAKE_LIMIT = 65536


class RelayClientConnection(ClientConnection):
    """websockets' client connection with a fast path for unfragmented text messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_size = size_limit(self.protocol, _FAST_CAP)
        self._fast = False
        self._handshaking = True
        self._buffer = bytearray()
        self._inbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._masks = b""
        self._mask_at = _MASKS

    # Receiving ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._receive_fast(data)
            return
        if not self._handshaking:
            super().data_received(data)
            return
        buffer = self._buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _HANDSHAKE_LIMIT:  # not a sane handshake: let websockets reject it
                self._handshaking = False
                self._fall_back(buffer)
            return
        head, rest = bytes(buffer[: end + 4]), bytes(buffer[end + 4 :])
        buffer.clear()
        self._handshaking = False
        # The response alone: after a 101 the parser waits at a frame boundary, empty.
        super().data_received(head)
        if self.protocol.state is _OPEN and not self.protocol.reader.buffer:
            self._fast = True
            if rest:
                self._receive_fast(rest)
        elif rest:
            super().data_received(rest)

    def _receive_fast(self, data: bytes) -> None:
        buffer = self._buffer
        if buffer:
            buffer += data
            view: bytes | bytearray = buffer
        else:
            view = data
        pos, end = 0, len(view)
        inbox = self._inbox
        max_size = self._max_size
        while pos < end:
            first = view[pos]
            if first != TEXT and first != PING and first != PONG:
                self._fall_back(view[pos:])
                return
            if end - pos > 1 and view[pos + 1] & 0x80:
                self._fall_back(view[pos:])  # a server never masks: 1002 by websockets
                return
            header = frame_header(view, pos, end)
            if header is None:
                break
            start, size = header
            if size > (max_size if first == TEXT else CONTROL_LIMIT):
                self._fall_back(view[pos:])
                return
            stop = start + size
            if stop > end:
                break  # a frame of ours, its payload (within the limit) still arriving
            if first == TEXT:
                try:
                    inbox.append(bytes(view[start:stop]).decode())
                except UnicodeDecodeError:
                    self._fall_back(view[pos:])  # 1007 by websockets, at recv()
                    return
            else:
                super().data_received(bytes(view[pos:stop]))  # ping/pong: the stock path
            pos = stop
        if view is buffer:
            del buffer[:pos]
        elif pos < end:
            buffer += view[pos:]
        if inbox:
            self._wake()
            if not self._reading_paused and len(inbox) >= _PAUSE_AT:
                self._reading_paused = True
                self.transport.pause_reading()

    def _fall_back(self, rest: bytes | bytearray) -> None:
        """Hand this frame and everything after it to websockets, for good."""
        self._fast = False
        rest = bytes(rest)
        self._buffer.clear()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        super().data_received(rest)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fast = False
        super().connection_lost(exc)
        self._wake()

    async def recv(self, decode: bool | None = None) -> Any:
        while True:
            inbox = self._inbox
            if inbox:
                text = inbox.popleft()
                if self._reading_paused and len(inbox) <= _RESUME_AT:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return text.encode() if decode is False else text
            if not self._fast:
                return await super().recv(decode)
            if self._waiter is not None:
                raise ConcurrencyError("cannot call recv while another coroutine is in recv")
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    # Sending --------------------------------------------------------------------------------

    def _mask(self) -> bytes:
        at = self._mask_at
        if at >= _MASKS:
            self._masks = os.urandom(_MASKS)  # strong entropy, as RFC 6455 asks, drawn in bulk
            at = 0
        self._mask_at = at + 4
        return self._masks[at : at + 4]

    async def send(self, message: Any, text: bool | None = None) -> None:
        """As websockets' ``send``; a ``str`` (or UTF-8 ``bytes`` with ``text=True``) is framed
        and written here while the connection is plainly open and not back-pressured."""
        if (
            self.protocol.state is _OPEN
            and self.send_in_progress is None
            and not self.paused
            and not self.transport.is_closing()
        ):
            kind = type(message)
            if kind is str and text is None:
                self.transport.write(client_text_frame(message.encode(), self._mask()))
                return
            if kind is bytes and text is True:
                self.transport.write(client_text_frame(message, self._mask()))
                return
        await super().send(message, text=text)
