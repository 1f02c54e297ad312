"""Fast paths for the two websockets of a call: Twilio (served by uvicorn) and OpenAI (SDK).

A call moves about 175 small text messages a second. Through the stock layers each costs a
framework's worth of Python (frame dataclasses, generator parsers, send contexts, per-message
read pausing) and its own ``write()`` system call, which on this path costs more than all of
the relay's own logic. The two classes here keep the stock implementations for everything
rare and delicate (handshakes, fragmentation, ping/pong, closing, errors) and take over only
the common case:

* :class:`RelayServerProtocol` is a uvicorn websocket protocol (``ws=RELAY_WS_PROTOCOL``): a
  complete, masked, unfragmented text frame from the client is unmasked and queued for the
  app in one step; a text frame from the app is framed and written directly; every write of
  one event-loop turn leaves in one ``write()`` (media + mark = one system call); reading is
  paused only when the app falls behind, not after every message.
* :class:`RelayClientConnection` is a websockets ``ClientConnection`` (``create_connection``,
  passed through the OpenAI SDK's ``websocket_connection_options``): unfragmented data frames
  from the server go to a plain deque that ``recv()`` reads, text sends are masked and written
  directly.

Anything unusual (a control frame other than ping/pong, a fragment, reserved bits, an oversize
or invalid frame) hands that frame and everything after it back to the stock implementation
for the rest of the connection, so the protocol stays exactly as strict as before. The bytes
on the wire are the same as the stock implementations send.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

try:
    from websockets.exceptions import ConcurrencyError
except ImportError:  # pragma: no cover - websockets < 14
    ConcurrencyError = RuntimeError  # type: ignore[misc,assignment]

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets always ships its C speedups on CPython
    from websockets.utils import apply_mask

__all__ = [
    "RELAY_EXTENSION",
    "RELAY_WS_PROTOCOL",
    "AsgiTextSocket",
    "CoalescingTransport",
    "RelayClientConnection",
    "RelayServerProtocol",
    "client_text_frame",
    "server_text_frame",
]

RELAY_WS_PROTOCOL = "voice_agent.voice.relay_sockets:RelayServerProtocol"
"""uvicorn's ``ws`` option for the app (``voice-agent serve`` and the e2e harness)."""

RELAY_EXTENSION = "voice_agent.relay"
"""ASGI scope extension: ``{"receive": …, "send_text": …}`` straight to the protocol."""

_OPEN = State.OPEN
_PAUSE_AT = 64  # queued messages before reading pauses (the app has fallen behind)
_RESUME_AT = 8
_MASKS = 4096  # bytes of os.urandom drawn at once for client frame masks


def _header(first: int, size: int, mask_bit: int) -> bytes:
    if size < 126:
        return bytes((first, mask_bit | size))
    if size < 65536:
        return bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")


def server_text_frame(data: bytes) -> bytes:
    """One final, unmasked text frame (server to client)."""
    return _header(0x81, len(data), 0) + data


def client_text_frame(data: bytes, mask: bytes) -> bytes:
    """One final text frame masked with ``mask`` (client to server)."""
    return _header(0x81, len(data), 0x80) + mask + apply_mask(data, mask)


def _frame_end(buffer: bytes | bytearray, pos: int, end: int) -> tuple[int, int] | None:
    """(payload start, payload end) of the frame at ``pos`` (mask included), if complete."""
    if end - pos < 2:
        return None
    second = buffer[pos + 1]
    size = second & 0x7F
    head = pos + 2
    if size == 126:
        if end - head < 2:
            return None
        size = int.from_bytes(buffer[head : head + 2], "big")
        head += 2
    elif size == 127:
        if end - head < 8:
            return None
        size = int.from_bytes(buffer[head : head + 8], "big")
        head += 8
    if second & 0x80:
        head += 4
    if end - head < size:
        return None
    return head, head + size


def _size_limit(protocol: Any) -> int | None:
    """The largest unfragmented message websockets would accept (None: no limit)."""
    if not hasattr(protocol, "max_message_size"):  # pragma: no cover - websockets < 15
        return protocol.max_size  # type: ignore[no-any-return]
    limits = [
        limit
        for limit in (protocol.max_message_size, protocol.max_fragment_size)
        if limit is not None
    ]
    return min(limits) if limits else None


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


class RelayServerProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with a fast path for text messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast = False
        self._checked = False
        self._buffer = bytearray()
        self._max_size = _size_limit(self.conn)

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
        while True:
            bounds = _frame_end(view, pos, end)
            if bounds is None:
                break
            start, stop = bounds
            first, second = view[pos], view[pos + 1]
            if (
                first == 0x81
                and second & 0x80
                and self.handshake_complete
                and not self.close_sent
                and (max_size is None or stop - start <= max_size)
            ):
                try:
                    text = apply_mask(view[start:stop], view[start - 4 : start]).decode()
                except UnicodeDecodeError:
                    self._fall_back(view[pos:])
                    return
                queue.put_nowait({"type": "websocket.receive", "text": text})
            elif first in (0x89, 0x8A) and second & 0x80:
                super().data_received(bytes(view[pos:stop]))  # ping/pong: the stock path
            else:
                self._fall_back(view[pos:])
                return
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


class RelayClientConnection(ClientConnection):
    """websockets' client connection with a fast path for unfragmented data messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_size = _size_limit(self.protocol)
        self._fast = False
        self._handshaking = True
        self._buffer = bytearray()
        self._inbox: deque[tuple[bool, bytes]] = deque()
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
            if len(buffer) > 65536:  # not a sane handshake: let websockets reject it
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
        while True:
            bounds = _frame_end(view, pos, end)
            if bounds is None:
                break
            start, stop = bounds
            first, second = view[pos], view[pos + 1]
            if second & 0x80:  # a server never masks: let websockets fail the connection
                self._fall_back(view[pos:])
                return
            if (first == 0x81 or first == 0x82) and (max_size is None or stop - start <= max_size):
                inbox.append((first == 0x81, bytes(view[start:stop])))
            elif first == 0x89 or first == 0x8A:
                super().data_received(bytes(view[pos:stop]))  # ping/pong: the stock path
            else:
                self._fall_back(view[pos:])
                return
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

    async def recv(self, decode: bool | None = None) -> Any:  # type: ignore[override]
        while True:
            inbox = self._inbox
            if inbox:
                is_text, payload = inbox.popleft()
                if self._reading_paused and len(inbox) <= _RESUME_AT:
                    self._reading_paused = False
                    self.transport.resume_reading()
                if decode is None:
                    decode = is_text
                return payload.decode() if decode else payload
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


class AsgiTextSocket:
    """A Starlette websocket spoken to through its ASGI callables, not its wrapper methods.

    With :class:`RelayServerProtocol` serving, ``receive``/``send_text`` go straight to the
    protocol (the relay extension in the scope); under any other server, to the raw ASGI
    ``receive``/``send`` the websocket was built with. Only for an accepted websocket.
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
            return text if text is not None else bytes(message.get("bytes") or b"").decode()
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))

    async def send_text(self, data: str) -> None:
        await self._send_text(data)

    async def _asgi_send_text(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._websocket.close(code, reason)
