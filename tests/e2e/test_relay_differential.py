"""Differential test of the relay's websocket fast paths against the stock implementations.

The same frame cases (``ws_cases.py``: RFC 6455 framing, ping/pong, reserved bits, opcodes,
fragmentation, UTF-8, close codes, masking, and issue 12's oversize declared lengths) go to:

- the server side: uvicorn serving an echo app with our ``RelayServerProtocol`` and with its
  stock ``websockets-sansio`` protocol (the one ours extends), both configured as
  ``voice-agent serve`` configures them (64 KiB limit); a raw client sends the bytes and
  records every frame the server sends back (echoes, pongs) and its close code;
- the client side: a raw server sends the bytes to websockets' ``connect`` with our
  ``RelayClientConnection`` and with the stock ``ClientConnection``, configured as the OpenAI
  SDK opens them (8 MiB limit); we record every message ``recv()`` returns, how it ended
  (exception, close codes sent and received) and what the client wrote back.

Outcomes must be identical, case by case, so an upgrade of uvicorn or websockets that
changes either implementation's behaviour fails here before it reaches a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.ws_cases import CASES, CLOSE, TEXT
from tests.e2e.ws_wire import (
    Outcome,
    accept_value,
    close_payload,
    close_quietly,
    frame,
    open_raw_client,
    parse_frames,
    read_until_close,
)
from voice_agent.voice.relay_sockets import (
    REALTIME_MAX_MESSAGE_BYTES,
    TWILIO_MAX_MESSAGE_BYTES,
    realtime_websocket_options,
    uvicorn_websocket_options,
)

QUIET = 0.3  # no byte for this long: the peer is waiting for more (or for us to close)
CHUNK_PAUSE = 0.005


class EchoApp:
    """Accepts and echoes every message as it came (text as text, bytes as bytes)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


@asynccontextmanager
async def echo_server(fast_path: bool) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        EchoApp(), log_level="critical", lifespan="on", **uvicorn_websocket_options(fast_path)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _send_chunks(writer: asyncio.StreamWriter, chunks: list[bytes]) -> None:
    for index, chunk in enumerate(chunks):
        if index:
            await asyncio.sleep(CHUNK_PAUSE)
        writer.write(chunk)
        with contextlib.suppress(ConnectionError):
            await writer.drain()


async def _finish(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    buffer: bytearray,
    outcome: Outcome,
    *,
    mask: bool,
) -> None:
    """Wait for the peer to end the connection; if it waits on us, probe and close cleanly."""
    if await read_until_close(reader, buffer, outcome, masked=not mask, quiet=QUIET):
        return
    outcome.messages.append(("--", b"still open: probe and close 1000"))
    writer.write(frame(TEXT, b"probe", mask=mask) + frame(CLOSE, close_payload(1000), mask=mask))
    if not await read_until_close(reader, buffer, outcome, masked=not mask, quiet=1.0):
        outcome.ended = "timeout"


async def server_outcome(port: int, chunks: list[bytes]) -> Outcome:
    reader, writer, status, rest = await open_raw_client(port)
    assert status == 101
    outcome, buffer = Outcome(), bytearray(rest)
    parse_frames(buffer, outcome, masked=False)
    try:
        await _send_chunks(writer, chunks)
        await _finish(reader, writer, buffer, outcome, mask=True)
    finally:
        await close_quietly(writer)
    return outcome


def _summary(outcomes: dict[str, Outcome]) -> dict[str, tuple[Any, ...]]:
    """What each side did, for comparison. The "--" marker (our own probe after a quiet spell)
    is left out: where it falls among the peer's pongs is how long a loaded machine took to
    schedule the peer, not what the protocol did; the probe's effect is still compared."""
    return {
        name: (
            [(kind, len(data), data[:64]) for kind, data in o.messages if kind != "--"],
            o.close_code,
            o.ended,
        )
        for name, o in outcomes.items()
    }


def _differences(stock: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    return [
        f"{name}:\n  stock {stock[name]}\n  ours  {ours[name]}"
        for name in stock
        if stock[name] != ours[name]
    ]


async def test_server_fast_path_matches_uvicorn_stock_protocol_frame_by_frame() -> None:
    assert len(CASES) >= 100
    limit = TWILIO_MAX_MESSAGE_BYTES
    results: dict[bool, dict[str, tuple[Any, ...]]] = {}
    for fast_path in (False, True):
        async with echo_server(fast_path) as port:
            outcomes = await asyncio.gather(
                *(server_outcome(port, build(True, limit)) for _, build in CASES)
            )
        results[fast_path] = _summary(dict(zip([n for n, _ in CASES], outcomes, strict=True)))
    stock, ours = results[False], results[True]
    assert not _differences(stock, ours), "\n".join(_differences(stock, ours))
    # The cases do what they say (the comparison is not between two broken runs):
    assert stock["text small"][0][0] == ("text", 12, b"Hello, world")
    assert stock["text small"][1:] == (1000, "close frame")
    assert stock["text one byte over the limit"][1] == 1009
    assert stock["declared 1 GiB, 10 bytes sent"][1] == 1009
    assert stock["declared 2**63-1, nothing sent"][1] == 1009
    assert stock["text RSV1"][1] == 1002
    assert stock["wrong masking on text"][1] == 1002
    assert stock["reserved data opcode 3"][1] == 1002
    assert stock["invalid UTF-8 0xff"][1] == 1007
    assert stock["ping 126 bytes"][1] == 1002
    assert stock["ping then text"][0][:2] == [("pong", 1, b"x"), ("text", 10, b"after ping")]
    assert stock["code point split across fragments"][0][0] == ("text", 3, "€".encode())
    assert stock["declared within the limit, payload short"][2] == "timeout"


# Client side ---------------------------------------------------------------------------------


@asynccontextmanager
async def frame_server(cases: list[list[bytes]], seen: dict[int, Outcome]) -> AsyncIterator[int]:
    """A raw websocket server: ``GET /N`` gets the handshake, then case N's bytes; what the
    client sends back (pongs, its close frame) goes to ``seen[N]``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        index = int(lines[0].split(" ")[1].strip("/"))
        key = next(
            v.strip()
            for k, _, v in (line.partition(":") for line in lines)
            if k.lower() == "sec-websocket-key"
        )
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_value(key)}\r\n\r\n"
            ).encode()
        )
        outcome = seen[index] = Outcome()
        try:
            await _send_chunks(writer, cases[index])
            await _finish(reader, writer, bytearray(), outcome, mask=False)
        finally:
            await close_quietly(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def client_outcome(port: int, index: int, fast_path: bool) -> tuple[Any, ...]:
    options = realtime_websocket_options(fast_path)
    ws = await connect(f"ws://127.0.0.1:{port}/{index}", **options)
    if fast_path:
        assert type(ws).__name__ == "RelayClientConnection"
    messages: list[tuple[str, Any]] = []
    ending: tuple[Any, ...] = ("open",)
    try:
        async with asyncio.timeout(5):
            while True:
                message = await ws.recv()
                messages.append((type(message).__name__, message[:64], len(message)))
    except ConnectionClosed as exc:
        ending = (
            type(exc).__name__,
            exc.rcvd.code if exc.rcvd else None,
            exc.sent.code if exc.sent else None,
        )
    except Exception as exc:  # what must not happen: anything but ConnectionClosed
        ending = ("raised", type(exc).__name__)
    finally:
        await ws.close()
    return messages, ending


async def test_client_fast_path_matches_websockets_client_connection_frame_by_frame() -> None:
    limit = REALTIME_MAX_MESSAGE_BYTES
    cases = [build(False, limit) for _, build in CASES]
    results: dict[bool, dict[str, tuple[Any, ...]]] = {}
    for fast_path in (False, True):
        seen: dict[int, Outcome] = {}
        async with frame_server(cases, seen) as port:
            outcomes = await asyncio.gather(
                *(client_outcome(port, index, fast_path) for index in range(len(cases)))
            )
            await asyncio.sleep(0.05)
        results[fast_path] = {
            name: (*outcome, _summary({"": seen[index]})[""])
            for index, ((name, _), outcome) in enumerate(zip(CASES, outcomes, strict=True))
        }
    stock, ours = results[False], results[True]
    assert not _differences(stock, ours), "\n".join(_differences(stock, ours))
    assert stock["text small"][0][0] == ("str", "Hello, world", 12)
    for name, code in [
        ("invalid UTF-8 0xff", 1007),
        ("invalid UTF-8 across fragments", 1007),
        ("declared 1 GiB, 10 bytes sent", 1009),
        ("text one byte over the limit", 1009),
        ("text RSV1", 1002),
        ("wrong masking on text", 1002),
    ]:
        assert stock[name][1] == ("ConnectionClosedError", None, code), name
    assert all(ending[1][0] != "raised" for ending in ours.values())
