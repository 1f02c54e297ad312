"""Raw RFC 6455 on a TCP socket, for tests that must send what no websocket library would:
frames built byte by byte (any opcode, reserved bits, masking, declared length), and a
reader that reports exactly what the peer sent back (messages and its close code)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass, field

from websockets.speedups import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    declared: int | None = None,
    length_form: int | None = None,
    key: bytes = b"\x37\xfa\x21\x3d",
) -> bytes:
    """One frame; ``declared`` overrides the length field, ``length_form`` (126 or 127) forces
    a longer length encoding than needed."""
    size = len(payload) if declared is None else declared
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask else 0
    form = length_form or (0 if size < 126 else 126 if size < 65536 else 127)
    if form == 0:
        head = bytes((first, mask_bit | size))
    elif form == 126:
        head = bytes((first, mask_bit | 126)) + struct.pack("!H", size)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack("!Q", size)
    if mask:
        return head + key + apply_mask(payload, key)
    return head + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class Outcome:
    """What one side saw: the messages delivered (in order) and how the connection ended."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    close_code: int | None = None
    ended: str = "open"  # "close frame" | "eof" | "timeout" | "reset"


def parse_frames(data: bytearray, outcome: Outcome, *, masked: bool) -> bool:
    """Consume whole frames from ``data`` into ``outcome``; True once a close frame came."""
    while len(data) >= 2:
        first, second = data[0], data[1]
        size, head = second & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                return False
            size, head = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            if len(data) < 10:
                return False
            size, head = struct.unpack("!Q", data[2:10])[0], 10
        key = b""
        if second & 0x80:
            key = bytes(data[head : head + 4])
            head += 4
        if len(data) < head + size:
            return False
        payload = bytes(data[head : head + size])
        if key:
            payload = apply_mask(payload, key)
        del data[: head + size]
        opcode = first & 0x0F
        if opcode == 0x8:
            outcome.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            outcome.ended = "close frame"
            return True
        kind = {0x1: "text", 0x2: "binary", 0x9: "ping", 0xA: "pong"}.get(opcode, hex(opcode))
        outcome.messages.append((kind, payload))
    return False


async def read_until_close(
    reader: asyncio.StreamReader,
    buffer: bytearray,
    outcome: Outcome,
    *,
    masked: bool,
    quiet: float,
) -> bool:
    """Read frames until a close frame, EOF, or ``quiet`` seconds without data; True if ended."""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), quiet)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            outcome.ended = "reset" if outcome.ended == "open" else outcome.ended
            return True
        if not chunk:
            if outcome.ended == "open":
                outcome.ended = "eof"
            return True
        buffer += chunk
        if parse_frames(buffer, outcome, masked=masked):
            return True


async def open_raw_client(
    port: int, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
    """TCP connect and send an upgrade request; returns the HTTP status and any bytes read
    past the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = bytearray()
    while b"\r\n\r\n" not in head:
        chunk = await reader.read(4096)
        if not chunk:
            break
        head += chunk
    response, _, rest = bytes(head).partition(b"\r\n\r\n")
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return reader, writer, status, rest


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
