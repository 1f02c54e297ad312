"""RFC 6455 frames as the fast paths read and write them.

A frame is judged at its header: :func:`frame_header` returns the payload's position and
declared length as soon as the first 2-14 bytes are in, so a fast path decides whether the
frame is its own (final, no reserved bits, text or ping/pong, masked as the side requires,
within the size limit) before a single payload byte is buffered. Anything else is handed to
the stock parser at once, header included, so the stock code refuses it exactly as it would
have: an oversize declared length costs nothing (1009), a reserved bit or a bad opcode 1002.
"""

from __future__ import annotations

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets always ships its C speedups on CPython
    from websockets.utils import apply_mask

__all__ = [
    "CONTROL_LIMIT",
    "PING",
    "PONG",
    "TEXT",
    "apply_mask",
    "client_text_frame",
    "frame_header",
    "server_text_frame",
]

TEXT = 0x81  # FIN, no reserved bits, text
PING = 0x89
PONG = 0x8A
CONTROL_LIMIT = 125  # RFC 6455 5.5: control frames carry at most 125 bytes


def _header(first: int, size: int, mask_bit: int) -> bytes:
    if size < 126:
        return bytes((first, mask_bit | size))
    if size < 65536:
        return bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")


def server_text_frame(data: bytes) -> bytes:
    """One final, unmasked text frame (server to client)."""
    return _header(TEXT, len(data), 0) + data


def client_text_frame(data: bytes, mask: bytes) -> bytes:
    """One final text frame masked with ``mask`` (client to server)."""
    return _header(TEXT, len(data), 0x80) + mask + apply_mask(data, mask)


def frame_header(buffer: bytes | bytearray, pos: int, end: int) -> tuple[int, int] | None:
    """(payload start, declared payload length) of the frame at ``pos``, mask key included,
    once its header is complete (None until then: at most 14 bytes are awaited)."""
    if end - pos < 2:
        return None
    second = buffer[pos + 1]
    size = second & 0x7F
    head = pos + 2
    if size == 126:
        if end - head < 2:
            return None
        size = (buffer[head] << 8) | buffer[head + 1]
        head += 2
    elif size == 127:
        if end - head < 8:
            return None
        size = int.from_bytes(buffer[head : head + 8], "big")
        head += 8
    if second & 0x80:
        head += 4
        if end < head:
            return None
    return head, size


def size_limit(protocol: object, cap: int) -> int:
    """The largest single frame the fast path takes: websockets' own limit for one
    unfragmented message, never above ``cap`` (bigger frames go to the stock parser)."""
    limits = [cap]
    for name in ("max_message_size", "max_fragment_size", "max_size"):
        limit = getattr(protocol, name, None)
        if isinstance(limit, int):
            limits.append(limit)
    return min(limits)
