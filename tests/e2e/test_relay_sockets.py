"""The relay's websocket fast paths against real peers: uvicorn serving RelayServerProtocol to a
websockets client, and a websockets server talking to RelayClientConnection. The fast paths
must be invisible: same messages, same order, same close codes as the stock implementations,
including for what they hand back (fragments, binary, pings, oversize, invalid UTF-8)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from voice_agent.voice.relay_sockets import (
    RELAY_EXTENSION,
    RELAY_WS_PROTOCOL,
    AsgiTextSocket,
    CoalescingTransport,
    client_text_frame,
    server_text_frame,
)
from voice_agent.voice.relay_sockets.client import RelayClientConnection


class EchoApp:
    """ASGI app: accepts, echoes every message (text through the relay extension), records."""

    def __init__(self) -> None:
        self.extensions: list[bool] = []
        self.disconnect_codes: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        extension = scope["extensions"].get(RELAY_EXTENSION)
        self.extensions.append(extension is not None)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnect_codes.append(message.get("code", 0))
                return
            if message.get("text") is not None:
                await extension["send_text"](message["text"])
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


@asynccontextmanager
async def relay_server(app: Any, **options: Any) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="critical",
        ws=RELAY_WS_PROTOCOL,
        ws_per_message_deflate=False,
        lifespan="on",
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_server_fast_path_echoes_everything_in_order() -> None:
    app = EchoApp()
    async with (
        relay_server(app) as port,
        connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as ws,
    ):
        sent: list[str | bytes] = []
        for i in range(200):  # many small frames, several per TCP read
            sent.append(f'{{"event":"media","n":{i}}}')
            await ws.send(sent[-1])
        sent.append("é" * 200)  # 16-bit length, non-ASCII
        await ws.send(sent[-1])
        sent.append("x" * 70_000)  # 64-bit length
        await ws.send(sent[-1])
        await ws.ping()  # ping/pong go through the stock path and keep the fast one
        sent.append("after the ping")
        await ws.send(sent[-1])
        received = [await ws.recv() for _ in sent]
        assert received == sent
        # A fragmented message hands the connection to the stock parser for good.
        await ws.send(["frag", "ment", "ed"])
        assert await ws.recv() == "fragmented"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        await ws.send("still text")
        assert await ws.recv() == "still text"
    await asyncio.sleep(0.1)
    assert app.extensions == [True]
    assert app.disconnect_codes == [1000]


async def test_server_rejects_invalid_utf8_and_oversize_like_the_stock_protocol() -> None:
    app = EchoApp()
    async with relay_server(app, ws_max_size=1000) as port:
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"
            await ws.send(b"\xff\xfe not utf-8", text=True)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1007
        async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            await ws.send("y" * 2000)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1009


async def test_asgi_text_socket_uses_the_extension_or_the_raw_callables() -> None:
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "websocket.receive", "text": "hi"}, {"type": "websocket.disconnect"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    class Plain:  # a Starlette-like websocket served by another server
        def __init__(self) -> None:
            self.scope: dict[str, Any] = {"extensions": {}}
            self._receive = receive
            self._send = send

    plain = AsgiTextSocket(Plain())
    assert await plain.receive_text() == "hi"
    await plain.send_text("out")
    assert sent == [{"type": "websocket.send", "text": "out"}]
    with pytest.raises(Exception, match="1000"):
        await plain.receive_text()


def test_frames_and_write_coalescing() -> None:
    assert server_text_frame(b"abc") == b"\x81\x03abc"
    assert server_text_frame(b"a" * 200)[:4] == b"\x81\x7e\x00\xc8"
    masked = client_text_frame(b"abcd", b"\x01\x02\x03\x04")
    assert masked == b"\x81\x84\x01\x02\x03\x04" + bytes([0x60, 0x60, 0x60, 0x60])

    class Transport:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            self.writes.append(b"<closed>")

    loop = asyncio.new_event_loop()
    try:
        raw = Transport()
        coalescing = CoalescingTransport(raw, loop)  # type: ignore[arg-type]
        coalescing.write(b"media")
        coalescing.write(b"mark")
        assert raw.writes == []
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert raw.writes == [b"mediamark"]  # one system call for both frames
        coalescing.write(b"last")
        coalescing.close()
        assert raw.writes[1:] == [b"last", b"<closed>"]
    finally:
        loop.close()


async def test_client_fast_path_receives_and_sends_like_websockets() -> None:
    received: list[str | bytes] = []
    pong_seen = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.send("hello")  # may share a TCP segment with the 101
        for i in range(100):
            await ws.send(f"delta {i}")
        await ws.send("z" * 70_000)
        waiter = await ws.ping()
        await waiter  # the client answered through the stock path
        pong_seen.set()
        await ws.send("after ping")
        async for message in ws:
            received.append(message)
            if message == "done":
                break
        await ws.send(["frag", "ment"])  # the client hands over to websockets for good
        await ws.send(b"\x00bin")
        await ws.send("last")
        await ws.close(1000)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(
            f"ws://127.0.0.1:{port}/",
            compression=None,
            max_size=None,
            create_connection=RelayClientConnection,
        )
        assert isinstance(ws, RelayClientConnection)
        got = [await ws.recv() for _ in range(102)]
        assert got[0] == "hello" and got[100] == "delta 99" and got[101] == "z" * 70_000
        assert await ws.recv(decode=False) == b"after ping"
        assert pong_seen.is_set()
        await ws.send("text out")
        await ws.send(b'{"raw":"json"}', text=True)
        await ws.send(b"\x01binary out")
        await ws.send("done")
        assert await ws.recv() == "fragment"
        assert await ws.recv() == b"\x00bin"
        assert await ws.recv() == "last"
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
    assert received == ["text out", '{"raw":"json"}', b"\x01binary out", "done"]
