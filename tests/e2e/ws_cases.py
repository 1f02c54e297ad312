"""Frame cases for the relay's differential test: RFC 6455's sections 5-7 (framing, ping/pong,
reserved bits, opcodes, fragmentation, UTF-8, close codes), as Autobahn's fuzzing suite groups
them, plus the attacks of issue 12 (declared lengths far beyond what is sent).

Each case builds the bytes one peer sends, as chunks written with a pause between them (to
split frames across reads); ``mask`` is the correct masking for that direction (clients mask,
servers do not), so one list serves both the server and the client side.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.ws_wire import close_payload, frame

Chunks = list[bytes]
Case = tuple[str, Callable[[bool, int], Chunks]]

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def _one(opcode: int, payload: bytes = b"", **options: object) -> Callable[[bool, int], Chunks]:
    return lambda mask, limit: [frame(opcode, payload, mask=mask, **options)]  # type: ignore[arg-type]


def _frames(*parts: tuple[int, bytes, dict[str, object]]) -> Callable[[bool, int], Chunks]:
    return lambda mask, limit: [
        b"".join(frame(op, data, mask=mask, **opts) for op, data, opts in parts)  # type: ignore[arg-type]
    ]


def _split(opcode: int, payload: bytes, sizes: list[int]) -> Callable[[bool, int], Chunks]:
    """One frame written in pieces of the given sizes (the rest in the last piece)."""

    def build(mask: bool, limit: int) -> Chunks:
        data = frame(opcode, payload, mask=mask)
        chunks, at = [], 0
        for size in sizes:
            chunks.append(data[at : at + size])
            at += size
        chunks.append(data[at:])
        return [c for c in chunks if c]

    return build


def _sized(opcode: int, delta: int) -> Callable[[bool, int], Chunks]:
    """A frame ``delta`` bytes around the peer's limit (0 = exactly at it)."""
    return lambda mask, limit: [frame(opcode, b"a" * (limit + delta), mask=mask)]


def _declared(extra: int, sent: int, form: int | None = None) -> Callable[[bool, int], Chunks]:
    """A text frame declaring ``limit + extra`` bytes (or ``-extra`` literally) that sends
    only ``sent`` of them: what the attack of issue 12 did."""

    def build(mask: bool, limit: int) -> Chunks:
        declared = -extra if extra < 0 else limit + extra
        return [frame(TEXT, b"x" * sent, mask=mask, declared=declared, length_form=form)]

    return build


def _wrong_mask(opcode: int, payload: bytes) -> Callable[[bool, int], Chunks]:
    return lambda mask, limit: [frame(opcode, payload, mask=not mask)]


_NO = {}  # no frame options
_NOFIN: dict[str, object] = {"fin": False}

CASES: list[Case] = [
    # 1 Framing: text and binary of every length encoding (Autobahn 1.1, 1.2)
    ("text small", _one(TEXT, b"Hello, world")),
    ("text empty", _one(TEXT, b"")),
    ("text 125 bytes", _one(TEXT, b"*" * 125)),
    ("text 126 bytes (16-bit length)", _one(TEXT, b"*" * 126)),
    ("text 127 bytes", _one(TEXT, b"*" * 127)),
    ("text 65535 bytes", _one(TEXT, b"*" * 65535)),
    ("text at the limit", _sized(TEXT, 0)),
    ("text one byte over the limit", _sized(TEXT, 1)),
    ("binary small", _one(BINARY, b"\x00\x01\x02\xfe\xff")),
    ("binary empty", _one(BINARY, b"")),
    ("binary over the limit", _sized(BINARY, 1)),
    ("binary invalid UTF-8 is fine", _one(BINARY, b"\xff\xfe\xfd")),
    ("text split byte by byte", _split(TEXT, b"split me", [1] * 12)),
    ("header split after the first byte", _split(TEXT, b"header", [1])),
    ("extended length split", _split(TEXT, b"L" * 300, [3])),
    ("mask key split", _split(TEXT, b"mask", [4])),
    ("non-minimal 16-bit length", _one(TEXT, b"short", length_form=126)),
    ("non-minimal 64-bit length", _one(TEXT, b"short", length_form=127)),
    ("64-bit length, 200 bytes", _one(TEXT, b"m" * 200, length_form=127)),
    (
        "100 texts in one write",
        lambda m, lim: [b"".join(frame(TEXT, b"%d" % i, mask=m) for i in range(100))],
    ),
    (
        "text and binary interleaved",
        _frames((TEXT, b"a", _NO), (BINARY, b"b", _NO), (TEXT, b"c", _NO)),
    ),
    # 2 Ping/pong (Autobahn 2.x)
    ("ping empty", _one(PING, b"")),
    ("ping 125 bytes", _one(PING, b"p" * 125)),
    ("ping 126 bytes", _one(PING, b"p" * 126)),
    ("ping binary payload", _one(PING, b"\x00\xff\xfe")),
    ("unsolicited pong", _one(PONG, b"hi")),
    ("pong 126 bytes", _one(PONG, b"p" * 126)),
    (
        "ten pings in one write",
        lambda m, lim: [b"".join(frame(PING, b"%d" % i, mask=m) for i in range(10))],
    ),
    ("ping then text", _frames((PING, b"x", _NO), (TEXT, b"after ping", _NO))),
    ("fragmented ping", _one(PING, b"frag", fin=False)),
    # 3 Reserved bits (Autobahn 3.x)
    ("text RSV1", _one(TEXT, b"rsv", rsv=4)),
    ("text RSV2", _one(TEXT, b"rsv", rsv=2)),
    ("text RSV3", _one(TEXT, b"rsv", rsv=1)),
    ("binary RSV1+RSV2+RSV3", _one(BINARY, b"rsv", rsv=7)),
    ("ping RSV2", _one(PING, b"rsv", rsv=2)),
    ("text then RSV1 text", _frames((TEXT, b"ok", _NO), (TEXT, b"bad", {"rsv": 4}))),
    ("RSV1 with a huge declared length", _declared(1 << 30, 10)),
    # 4 Opcodes (Autobahn 4.x)
    *[(f"reserved data opcode {op}", _one(op, b"op")) for op in (3, 4, 5, 6, 7)],
    *[(f"reserved control opcode {op:#x}", _one(op, b"op")) for op in (0xB, 0xC, 0xD, 0xE, 0xF)],
    ("text then reserved opcode", _frames((TEXT, b"first", _NO), (0x5, b"", _NO))),
    # 5 Fragmentation (Autobahn 5.x)
    ("text in two fragments", _frames((TEXT, b"frag", _NOFIN), (CONT, b"ment", _NO))),
    (
        "text in three fragments",
        _frames((TEXT, b"a", _NOFIN), (CONT, b"b", _NOFIN), (CONT, b"c", _NO)),
    ),
    ("empty fragments", _frames((TEXT, b"", _NOFIN), (CONT, b"", _NOFIN), (CONT, b"", _NO))),
    ("binary in two fragments", _frames((BINARY, b"\x00", _NOFIN), (CONT, b"\x01", _NO))),
    (
        "ping between fragments",
        _frames((TEXT, b"fr", _NOFIN), (PING, b"!", _NO), (CONT, b"ag", _NO)),
    ),
    (
        "fragments in separate writes",
        lambda m, lim: [frame(TEXT, b"one", fin=False, mask=m), frame(CONT, b"two", mask=m)],
    ),
    ("continuation without a start", _one(CONT, b"orphan")),
    ("final continuation without a start", _frames((CONT, b"x", _NO), (TEXT, b"y", _NO))),
    ("text while a message is fragmented", _frames((TEXT, b"a", _NOFIN), (TEXT, b"b", _NO))),
    ("binary while a message is fragmented", _frames((TEXT, b"a", _NOFIN), (BINARY, b"b", _NO))),
    (
        "fragments over the limit in total",
        lambda m, lim: [
            frame(TEXT, b"f" * (lim // 2 + 1), fin=False, mask=m),
            frame(CONT, b"f" * (lim // 2 + 1), mask=m),
        ],
    ),
    # 6 UTF-8 (Autobahn 6.x)
    ("valid UTF-8 (multi-byte)", _one(TEXT, "κόσμε € 😀 Привет".encode())),
    ("invalid UTF-8 0xff", _one(TEXT, b"\xff")),
    ("invalid UTF-8 overlong slash", _one(TEXT, b"\xc0\xaf")),
    ("invalid UTF-8 surrogate", _one(TEXT, b"\xed\xa0\x80")),
    ("invalid UTF-8 truncated", _one(TEXT, b"ok \xe2\x82")),
    ("invalid UTF-8 above U+10FFFF", _one(TEXT, b"\xf4\x90\x80\x80")),
    ("valid text, then invalid UTF-8", _frames((TEXT, b"good", _NO), (TEXT, b"bad \xff", _NO))),
    (
        "code point split across fragments",
        _frames((TEXT, b"\xe2", _NOFIN), (CONT, b"\x82\xac", _NO)),
    ),
    ("invalid UTF-8 across fragments", _frames((TEXT, b"\xe2", _NOFIN), (CONT, b"\x28\xa1", _NO))),
    ("invalid UTF-8 in the first fragment", _frames((TEXT, b"\xff", _NOFIN), (CONT, b"ok", _NO))),
    # 7 Close (Autobahn 7.x)
    ("close without a payload", _one(CLOSE, b"")),
    ("close 1000", _one(CLOSE, close_payload(1000))),
    ("close 1000 with a reason", _one(CLOSE, close_payload(1000, b"bye"))),
    ("close 1-byte payload", _one(CLOSE, b"\x03")),
    ("close reason invalid UTF-8", _one(CLOSE, close_payload(1000, b"\xff"))),
    ("close 126 bytes", _one(CLOSE, close_payload(1000, b"r" * 124))),
    ("close fragmented", _one(CLOSE, close_payload(1000), fin=False)),
    *[
        (f"close code {code}", _one(CLOSE, close_payload(code)))
        for code in (
            0,
            999,
            1001,
            1002,
            1003,
            1004,
            1005,
            1006,
            1007,
            1008,
            1009,
            1010,
            1011,
            1012,
            1013,
            1014,
            1015,
            1016,
            1100,
            2000,
            2999,
            3000,
            3999,
            4000,
            4999,
            5000,
            65535,
        )
    ],
    ("text after close", _frames((CLOSE, close_payload(1000), _NO), (TEXT, b"late", _NO))),
    (
        "text then close in one write",
        _frames((TEXT, b"last words", _NO), (CLOSE, close_payload(1000), _NO)),
    ),
    # Masking (RFC 6455 5.1, 5.3)
    ("wrong masking on text", _wrong_mask(TEXT, b"mask")),
    ("wrong masking on ping", _wrong_mask(PING, b"mask")),
    ("all-zero mask key", lambda m, lim: [frame(TEXT, b"zero", mask=m, key=b"\0\0\0\0")]),
    # Issue 12: lengths declared far beyond what is sent (refused at the header, 1009)
    ("declared just over the limit, 10 bytes sent", _declared(1, 10)),
    ("declared 1 GiB, 10 bytes sent", _declared(1 << 30, 10)),
    ("declared 2**63-1, nothing sent", _declared(-(2**63 - 1), 0)),
    ("declared 2**64-1 (MSB set)", _declared(-(2**64 - 1), 0)),
    ("declared 1 GiB binary", lambda m, lim: [frame(BINARY, b"", mask=m, declared=1 << 30)]),
    (
        "declared 1 GiB continuation",
        lambda m, lim: [
            frame(TEXT, b"a", fin=False, mask=m) + frame(CONT, b"", mask=m, declared=1 << 30)
        ],
    ),
    (
        "declared 1 GiB, header split",
        lambda m, lim: [(d := frame(TEXT, b"", mask=m, declared=1 << 30))[:3], d[3:]],
    ),
    ("declared within the limit, payload short", _declared(-1000, 10)),
]
