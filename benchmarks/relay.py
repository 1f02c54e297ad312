"""Relay benchmark: N concurrent phone calls through the real app (uvicorn, its own process).

Two processes. The app (``voice-agent serve``) runs alone in one; this process is the load
generator and plays both peers of every call on one event loop, with a minimal hand-rolled
websocket (no framework, no JSON on the hot path) so that it stays cheap:

- N Twilio callers: each sends a 20 ms ``media`` frame every 20 ms (calls spread over the
  20 ms period), plays the assistant audio it receives at 8000 bytes/s, echoes each ``mark``
  once the audio queued before it has played, and on ``clear`` drops its queue and echoes
  the pending marks (like Twilio);
- one fake OpenAI Realtime server: after ``response.create`` it streams 20 ms audio deltas
  (``--delta-ms``) for the whole call, 1.5x faster than real time (the API bursts), and emits
  ``input_audio_buffer.speech_started`` every ``--barge-every`` seconds.

Every 160-byte audio frame carries its call, its sequence number and its send time, so:

- inbound latency: caller frame sent -> the Realtime server reads it. The app sends caller
  audio in 60 ms batches (``AUDIO_BATCH_BYTES`` in voice/bridge.py); ``inbound_ms`` is the
  relay's own latency, measured on the newest frame of each batch, and
  ``inbound_with_batching_ms`` covers every frame, so it includes the deliberate hold (<= 40 ms);
- outbound latency: delta sent by the Realtime server -> the caller reads the media frame;
- barge-in: the Realtime server writes ``speech_started`` -> the caller's socket reads the
  ``clear`` frame (both timestamps are taken where the bytes are written and read, on one
  clock, in this process);
- CPU of the app process only, from /proc/PID/stat, over the steady window (all calls up),
  with its system calls per call-second (/proc/PID/io) and the kernel's share; the load
  generator's own CPU and the machine's idle share are reported too, so a saturated machine
  shows. ``--profile FILE`` records the app with py-spy over the window, ``--cprofile FILE``
  runs it under cProfile.

Reproduce:  python benchmarks/relay.py --calls 10 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator
from websockets.speedups import apply_mask

ROOT = Path(__file__).resolve().parent.parent

AUTH_TOKEN = "bench-twilio-token"
PUBLIC = "https://bench.example"
FRAME = 160  # 20 ms of 8 kHz μ-law
PAD = b"\xff" * (FRAME - 16)
BURST = 1.5  # assistant audio arrives 1.5x faster than it plays
TICK = 0.005  # the load generator's clock; each call sends on one of the 4 ticks of 20 ms
SLOTS = 4
TICKS = os.sysconf("SC_CLK_TCK")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ZERO_MASK = b"\x00\x00\x00\x00"  # valid (if not secret) client mask: masking is a no-op


# The app under cProfile; uvicorn re-raises SIGTERM after its shutdown, so exit from there.
CPROFILE = """
import cProfile, signal, sys
from voice_agent.cli import app
def leave(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, leave)
profiler = cProfile.Profile()
profiler.enable()
try:
    app(sys.argv[1:])
finally:
    profiler.disable()
    profiler.dump_stats(%r)
"""


# Minimal websocket framing ------------------------------------------------------------------


def ws_frame(payload: bytes, opcode: int = 1, *, masked: bool = False) -> bytes:
    """One FIN frame; client frames carry the all-zero mask, so the payload goes as is."""
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, mask_bit | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, mask_bit | 127)) + size.to_bytes(8, "big")
    return head + ZERO_MASK + payload if masked else head + payload


def ws_parse(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Complete frames at the head of ``buffer`` (consumed); a partial frame stays."""
    frames = []
    pos = 0
    end = len(buffer)
    while end - pos >= 2:
        first, second = buffer[pos], buffer[pos + 1]
        size = second & 0x7F
        head = pos + 2
        if size == 126:
            if end - head < 2:
                break
            size = int.from_bytes(buffer[head : head + 2], "big")
            head += 2
        elif size == 127:
            if end - head < 8:
                break
            size = int.from_bytes(buffer[head : head + 8], "big")
            head += 8
        mask = b""
        if second & 0x80:
            if end - head < 4:
                break
            mask = bytes(buffer[head : head + 4])
            head += 4
        if end - head < size:
            break
        payload = bytes(buffer[head : head + size])
        if mask and mask != ZERO_MASK:
            payload = apply_mask(payload, mask)
        frames.append((first & 0x0F, payload))
        pos = head + size
    del buffer[:pos]
    return frames


def stamp(seq: int, now: float) -> bytes:
    """A 160-byte frame carrying a number (caller << 32 | sequence) and its send time."""
    return struct.pack(">Qd", seq, now) + PAD


def stamps(audio: bytes) -> list[float]:
    """Send times of the 160-byte frames in a chunk of audio."""
    return [struct.unpack_from(">d", audio, i + 8)[0] for i in range(0, len(audio) - 15, FRAME)]


def field(payload: bytes, key: bytes) -> bytes:
    start = payload.index(key) + len(key)
    return payload[start : payload.index(b'"', start)]


# Measurements -------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.inbound_newest: list[float] = []
        self.inbound_all: list[float] = []
        self.outbound: list[float] = []
        self.speech_started: dict[int, list[float]] = {}
        self.clears: dict[int, list[float]] = {}
        self.window = (float("inf"), float("inf"))
        self.closed_early: list[str] = []

    def measuring(self, now: float) -> bool:
        return self.window[0] <= now <= self.window[1]


# The Twilio side ----------------------------------------------------------------------------


class TwilioCaller(asyncio.Protocol):
    """One caller's media stream, Twilio's side of ``<Connect><Stream>``."""

    def __init__(self, index: int, port: int, token: str, stats: Stats) -> None:
        self.index = index
        self.port = port
        self.token = token
        self.stats = stats
        self.stream_sid = f"MZ{index:032d}"
        self.call_sid = f"CA{index:032d}"
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.open = False
        self.seq = 0
        self.play_until = 0.0
        self.marks: deque[tuple[float, bytes]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            "wss://bench.example/twilio/media-stream", {}
        )
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                "GET /twilio/media-stream HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"X-Twilio-Signature: {signature}\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.stats.closed_early.append(f"call {self.index}: socket closed")
        self.open = False
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the upgrade"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode()))
                return
            self.open = True
            self.upgraded.set_result(None)
        echo = []
        for opcode, payload in ws_parse(self.buffer):
            if opcode == 1:
                if payload.startswith(b'{"event":"media"'):
                    audio = binascii.a2b_base64(field(payload, b'"payload":"'))
                    if self.stats.measuring(now):
                        self.stats.outbound.extend(now - sent for sent in stamps(audio))
                    self.play_until = max(self.play_until, now) + len(audio) / 8000
                elif payload.startswith(b'{"event":"mark"'):
                    self.marks.append((self.play_until, field(payload, b'"name":"')))
                elif payload.startswith(b'{"event":"clear"'):
                    self.stats.clears.setdefault(self.index, []).append(now)
                    self.play_until = now
                    echo.extend(self._mark(name) for _, name in self.marks)
                    self.marks.clear()
            elif opcode == 9:
                echo.append(ws_frame(payload, 10, masked=True))
            elif opcode == 8 and self.open:
                self.open = False
                self.stats.closed_early.append(f"call {self.index}: closed by the app")
                echo.append(ws_frame(payload[:2], 8, masked=True))
        if echo and self.transport is not None:
            self.transport.write(b"".join(echo))

    def _mark(self, name: bytes) -> bytes:
        return ws_frame(
            b'{"event":"mark","sequenceNumber":"0","streamSid":"%s","mark":{"name":"%s"}}'
            % (self.stream_sid.encode(), name),
            masked=True,
        )

    def send_json(self, event: dict[str, object]) -> None:
        assert self.transport is not None
        self.transport.write(ws_frame(json.dumps(event).encode(), masked=True))

    def start(self) -> None:
        self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.send_json(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": "AC1",
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": {"token": self.token},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    def tick(self, now: float) -> None:
        """20 ms of caller audio, with the marks whose audio has played since the last tick."""
        if not self.open or self.transport is None:
            return
        seq = self.seq
        self.seq += 1
        out = [
            ws_frame(
                b'{"event":"media","sequenceNumber":"%d","streamSid":"%s","media":{"track":'
                b'"inbound","chunk":"%d","timestamp":"%d","payload":"%s"}}'
                % (
                    seq + 2,
                    self.stream_sid.encode(),
                    seq + 1,
                    seq * 20,
                    base64.b64encode(stamp(self.index << 32 | seq, now)),
                ),
                masked=True,
            )
        ]
        marks = self.marks
        while marks and marks[0][0] <= now:
            out.append(self._mark(marks.popleft()[1]))
        self.transport.write(b"".join(out))

    def stop(self) -> None:
        if self.open:
            self.open = False
            self.send_json(
                {
                    "event": "stop",
                    "sequenceNumber": str(self.seq + 2),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": "AC1", "callSid": self.call_sid},
                }
            )


# The OpenAI Realtime side -------------------------------------------------------------------


class RealtimeSession(asyncio.Protocol):
    """One Realtime websocket as the server: answers the session, streams audio, barges in."""

    def __init__(self, server: RealtimeServer) -> None:
        self.server = server
        self.stats = server.stats
        self.index = -1
        self.caller = -1  # the caller's index, read from the caller audio it relays
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False
        self.streaming_since = 0.0
        self.deltas = 0
        self.item = 0
        self.next_barge = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.server.sessions.discard(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            key = next(
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            assert self.transport is not None
            self.transport.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            self.open = True
            self.server.sessions.add(self)
            self._send(b'{"type":"session.created","event_id":"e0","session":{}}')
        out, closing = [], False
        for opcode, payload in ws_parse(self.buffer):
            if opcode == 1:
                if payload.startswith(b'{"type":"input_audio_buffer.append"'):
                    audio = binascii.a2b_base64(field(payload, b'"audio":"'))
                    if self.caller < 0 and len(audio) >= 16:
                        self.caller = struct.unpack_from(">Q", audio)[0] >> 32
                    if self.stats.measuring(now):
                        sent = stamps(audio)
                        self.stats.inbound_all.extend(now - s for s in sent)
                        if sent:
                            self.stats.inbound_newest.append(now - max(sent))
                    continue
                event = json.loads(payload)
                kind = event.get("type")
                if kind == "session.update":
                    out.append(ws_frame(b'{"type":"session.updated","event_id":"e1","session":{}}'))
                elif kind == "response.create" and not self.streaming_since:
                    self.index = self.server.next_index()
                    self.streaming_since = now
                    self.next_barge = now + self.server.barge_every * (1 + (self.index % 10) / 10)
                    out.append(
                        ws_frame(
                            b'{"type":"response.created","event_id":"e2","response":'
                            b'{"id":"r%d","metadata":null}}' % self.index
                        )
                    )
            elif opcode == 9:
                out.append(ws_frame(payload, 10))
            elif opcode == 8:
                out.append(ws_frame(payload[:2], 8))
                self.open = False
                closing = True
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
            if closing:  # a server ends the TCP connection after the close handshake
                self.transport.close()

    def _send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(ws_frame(payload))

    def tick(self, now: float) -> None:
        """The deltas due by now (1.5x real time), after a speech start when one is due."""
        if not self.streaming_since or not self.open or self.transport is None:
            return
        out = []
        if now >= self.next_barge and self.caller >= 0:
            self.next_barge += self.server.barge_every
            self.item += 1
            out.append(
                ws_frame(
                    b'{"type":"input_audio_buffer.speech_started","event_id":"s%d",'
                    b'"audio_start_ms":0,"item_id":"in%d"}' % (self.item, self.item)
                )
            )
            self.stats.speech_started.setdefault(self.caller, []).append(now)
        delta_s = self.server.delta_ms / 1000
        due = int((now - self.streaming_since) * BURST / delta_s) + 1
        while self.deltas < due:
            out.append(
                ws_frame(
                    b'{"type":"response.output_audio.delta","event_id":"d","response_id":"r%d",'
                    b'"item_id":"item_%d_%d","output_index":0,"content_index":0,"delta":"%s"}'
                    % (self.index, self.index, self.item, base64.b64encode(self.server.audio(now)))
                )
            )
            self.deltas += 1
        if out:
            self.transport.write(b"".join(out))


class RealtimeServer:
    def __init__(self, stats: Stats, barge_every: float, delta_ms: int) -> None:
        self.stats = stats
        self.barge_every = barge_every
        self.delta_ms = delta_ms
        self.sessions: set[RealtimeSession] = set()
        self._count = 0

    def audio(self, now: float) -> bytes:
        """One delta of audio: stamped 160-byte frames."""
        return stamp(0, now) * (self.delta_ms // 20)

    def next_index(self) -> int:
        self._count += 1
        return self._count - 1


# The attack (--attack N) -------------------------------------------------------------------


class AttackStats:
    def __init__(self) -> None:
        self.connections = 0
        self.refused: dict[int, int] = {}  # HTTP status of refused upgrades
        self.closed: dict[int, int] = {}  # close codes of accepted ones
        self.bytes_sent = 0
        self.rss_peak_mb = 0.0


async def attacker(index: int, port: int, stats: AttackStats, stop: asyncio.Event) -> None:
    """Issue 12's memory attack, over and over until ``stop``: open the media stream (unsigned
    for even ``index``, with a valid upgrade signature but no call token for odd ones), declare
    a 1 GiB text frame and pour payload after it as fast as the app takes it. At most 20
    connections a second per attacker, so the load generator keeps its own clock."""
    signed = index % 2 == 1
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        "wss://bench.example/twilio/media-stream", {}
    )
    chunk = b"\x00" * 65536
    while not stop.is_set():
        began = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        stats.connections += 1
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /twilio/media-stream HTTP/1.1\r\nHost: bench.example\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n"
                + (f"X-Twilio-Signature: {signature}\r\n" if signed else "")
                + "\r\n"
            ).encode()
        )
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                stats.refused[status] = stats.refused.get(status, 0) + 1
            else:
                writer.write(bytes((0x81, 0x80 | 127)) + (1 << 30).to_bytes(8, "big") + ZERO_MASK)
                closing = asyncio.ensure_future(reader.read(64))
                with contextlib.suppress(OSError):
                    while not closing.done() and not stop.is_set():  # ~12 MB/s per socket
                        writer.write(chunk)
                        await writer.drain()
                        stats.bytes_sent += len(chunk)
                        await asyncio.wait([closing], timeout=0.005)
                try:
                    frame = await asyncio.wait_for(closing, 1)
                except (OSError, TimeoutError):
                    frame = b""
                code = int.from_bytes(frame[2:4], "big") if frame[:1] == b"\x88" else 1006
                stats.closed[code] = stats.closed.get(code, 0) + 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            stats.closed[1006] = stats.closed.get(1006, 0) + 1
        finally:
            writer.close()
        await asyncio.sleep(max(0.0, 0.05 - (time.monotonic() - began)))


async def sample_rss(pid: int, stats: AttackStats, stop: asyncio.Event) -> None:
    while not stop.is_set():
        stats.rss_peak_mb = max(stats.rss_peak_mb, rss_mb(pid))
        await asyncio.sleep(0.05)


# The run ------------------------------------------------------------------------------------


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def syscalls(pid: int) -> tuple[int, int]:
    """(read, write) system calls of a process so far (reads include recv, writes send)."""
    values = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(values["syscr"]), int(values["syscw"])


def machine_idle() -> tuple[float, float]:
    """(idle, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values[:8])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 0.5), "p99": pct(values, 0.99), "max": pct(values, 1.0)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def barge_latencies(stats: Stats) -> list[float]:
    """Pair each speech start in the window with the first clear the caller read after it."""
    latencies = []
    for call, starts in stats.speech_started.items():
        clears = sorted(stats.clears.get(call, []))
        for started in starts:
            if not stats.measuring(started):
                continue
            after = next((c for c in clears if c >= started), None)
            if after is not None and after - started < 2.0:
                latencies.append(after - started)
    return latencies


async def ticker(callers: list[TwilioCaller], server: RealtimeServer, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    slot = 0
    due = loop.time()
    while not stop.is_set():
        now = time.monotonic()
        for caller in callers[slot::SLOTS]:
            caller.tick(now)
        for session in list(server.sessions):
            session.tick(now)
        slot = (slot + 1) % SLOTS
        due += TICK
        await asyncio.sleep(max(0.0, due - loop.time()))


async def open_call(index: int, port: int, stats: Stats, http: httpx.AsyncClient) -> TwilioCaller:
    call_sid = f"CA{index:032d}"
    params = {"CallSid": call_sid, "From": f"+5511987{index:06d}", "To": "+551134567800"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/voice", params)
    response = await http.post(
        f"http://127.0.0.1:{port}/twilio/voice",
        data=params,
        headers={"X-Twilio-Signature": signature},
        timeout=30,
    )
    token = response.text.split('name="token" value="')[1].split('"')[0]
    loop = asyncio.get_running_loop()
    _, caller = await loop.create_connection(
        lambda: TwilioCaller(index, port, token, stats), "127.0.0.1", port
    )
    await caller.upgraded
    caller.start()
    return caller


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    stats = Stats()
    peer_port = free_port()
    app_port = free_port()
    loop = asyncio.get_running_loop()
    server = RealtimeServer(stats, args.barge_every, args.delta_ms)
    listener = await loop.create_server(
        lambda: RealtimeSession(server), "127.0.0.1", peer_port, backlog=1024
    )
    with tempfile.TemporaryDirectory() as folder, open(args.log, "w") as log:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VOICE_AGENT_DATABASE_URL": f"sqlite:///{folder}/relay.db",
            "VOICE_AGENT_PUBLIC_URL": PUBLIC,
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VOICE_AGENT_TWILIO_API_BASE": "http://127.0.0.1:9",
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{peer_port}/v1",
            "VOICE_AGENT_IDLE_TIMEOUT_SECONDS": "600",
            "VOICE_AGENT_MAX_CALL_SECONDS": "3600",
            "NO_PROXY": "127.0.0.1,localhost",
            "VOICE_AGENT_RELAY_FAST_PATH": "false" if args.stock else "true",
        }
        command = ["-m", "voice_agent", "serve", "--port", str(app_port)]
        if args.cprofile:
            command = ["-c", CPROFILE % args.cprofile, *command[2:]]
        app = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=folder,
        )
        stop = asyncio.Event()
        callers: list[TwilioCaller] = []
        attack_stats: list[AttackStats] = []
        profiler = None
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(1200):  # up to 2 min: start-up is slow on a loaded machine
                    try:
                        await http.get(f"http://127.0.0.1:{app_port}/health", timeout=1)
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                idle_rss = rss_mb(app.pid)
                cpu0, t0 = cpu_seconds(app.pid), time.monotonic()
                await asyncio.sleep(args.idle_seconds)  # the process's own timers and jobs
                idle_cores = (cpu_seconds(app.pid) - cpu0) / (time.monotonic() - t0)
                ticks = asyncio.create_task(ticker(callers, server, stop))
                for start in range(0, args.calls, 10):  # ramp up 10 calls at a time
                    batch = range(start, min(args.calls, start + 10))
                    callers.extend(
                        await asyncio.gather(*(open_call(i, app_port, stats, http) for i in batch))
                    )
                    await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # every call greeted and streaming
            began = time.monotonic()
            stats.window = (began, began + args.seconds)
            spy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
            if args.profile and spy:
                profiler = subprocess.Popen(
                    [spy, "record", "-p", str(app.pid), "-d", str(int(args.seconds)),
                     "-r", "200", "-f", "raw", "-o", args.profile],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            cpu0, own0, machine0 = cpu_seconds(app.pid), time.process_time(), machine_idle()
            io0, split0 = syscalls(app.pid), cpu_split(app.pid)
            attack, attack_stop = AttackStats(), asyncio.Event()
            attack_stats.append(attack)
            sampler = asyncio.create_task(sample_rss(app.pid, attack, attack_stop))
            attackers = [
                asyncio.create_task(attacker(i, app_port, attack, attack_stop))
                for i in range(args.attack)
            ]
            await asyncio.sleep(args.seconds)
            attack_stop.set()
            await asyncio.gather(sampler, *attackers)
            cpu1, own1, machine1 = cpu_seconds(app.pid), time.process_time(), machine_idle()
            io1, split1 = syscalls(app.pid), cpu_split(app.pid)
            elapsed = time.monotonic() - began
            busy_rss = rss_mb(app.pid)
            stop.set()
            await ticks
            for caller in callers:
                caller.stop()
            await asyncio.sleep(1.0)
            if profiler is not None:
                profiler.wait(60)
        finally:
            for caller in callers:
                if caller.transport is not None:
                    caller.transport.close()
            listener.close()
            app.terminate()
            try:
                app.wait(10)
            except subprocess.TimeoutExpired:
                app.kill()
    app_cores = (cpu1 - cpu0) / elapsed
    idle_share = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
    return {
        "calls": args.calls,
        "seconds": args.seconds,
        "calls_closed_early": stats.closed_early[:5],
        "frames_measured": {
            "inbound": len(stats.inbound_all),
            "outbound": len(stats.outbound),
            "barge_ins": sum(len(v) for v in stats.speech_started.values()),
        },
        "inbound_ms": summary(stats.inbound_newest),
        "inbound_with_batching_ms": summary(stats.inbound_all),
        "outbound_ms": summary(stats.outbound),
        "speech_start_to_clear_ms": summary(barge_latencies(stats)),
        "app_syscalls_per_call_second": {
            "read": round((io1[0] - io0[0]) / elapsed / args.calls, 1),
            "write": round((io1[1] - io0[1]) / elapsed / args.calls, 1),
        },
        "app_cpu_system_share_pct": round(
            100 * (split1[1] - split0[1]) / max(1e-9, cpu1 - cpu0), 1
        ),
        "app_cpu_cores": round(app_cores, 4),
        "app_cpu_idle_cores": round(idle_cores, 4),
        "cpu_per_call_pct_of_core": round(100 * app_cores / args.calls, 3),
        "cpu_per_call_net_pct_of_core": round(100 * (app_cores - idle_cores) / args.calls, 3),
        "memory_per_call_mb": round((busy_rss - idle_rss) / args.calls, 3),
        "app_rss_mb": {
            "idle": round(idle_rss, 1),
            "busy": round(busy_rss, 1),
            "peak": round(attack_stats[0].rss_peak_mb, 1),
        },
        "fast_path": not args.stock,
        "attack": {
            "sockets": args.attack,
            "connections": attack_stats[0].connections,
            "refused_http": attack_stats[0].refused,
            "closed_codes": attack_stats[0].closed,
            "mb_sent": round(attack_stats[0].bytes_sent / 2**20, 1),
        },
        "load_generator_cpu_cores": round((own1 - own0) / elapsed, 3),
        "machine_idle_pct": round(100 * idle_share, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="the app alone before the calls: its own timers' CPU, subtracted in the net figure",
    )
    parser.add_argument("--barge-every", type=float, default=2.0)
    parser.add_argument(
        "--delta-ms", type=int, default=20, help="audio per model delta (20: the worst case)"
    )
    parser.add_argument("--log", default=os.devnull, help="where the app's log goes")
    parser.add_argument("--profile", help="py-spy raw profile of the app over the window")
    parser.add_argument("--cprofile", help="run the app under cProfile, stats to this file")
    parser.add_argument(
        "--attack",
        type=int,
        default=0,
        help="sockets declaring 1 GiB frames during the window (half unsigned, half signed)",
    )
    parser.add_argument(
        "--stock", action="store_true", help="the app with VOICE_AGENT_RELAY_FAST_PATH=false"
    )
    args = parser.parse_args()
    if args.cprofile:
        args.cprofile = os.path.abspath(args.cprofile)  # the app runs in a temporary folder
    try:
        import uvloop  # the load generator must stay cheap

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(main_async(args))
    print(json.dumps(result))
    print(
        f"{result['calls']} calls: app CPU {result['cpu_per_call_pct_of_core']}% of a core per "
        f"call; relay latency in p50 {result['inbound_ms']['p50']} / p99 "
        f"{result['inbound_ms']['p99']} ms (with batching p99 "
        f"{result['inbound_with_batching_ms']['p99']} ms), out p50 "
        f"{result['outbound_ms']['p50']} / p99 {result['outbound_ms']['p99']} ms; "
        f"speech-start→clear p50 {result['speech_start_to_clear_ms']['p50']} / p99 "
        f"{result['speech_start_to_clear_ms']['p99']} ms; {result['memory_per_call_mb']} MB "
        f"per call; machine idle {result['machine_idle_pct']}%"
    )
    if args.attack:
        attack = result["attack"]
        print(
            f"under attack by {args.attack} sockets ({attack['connections']} connections, "
            f"{attack['mb_sent']} MB sent, refused {attack['refused_http']}, closed "
            f"{attack['closed_codes']}): app RSS idle {result['app_rss_mb']['idle']} MB, peak "
            f"{result['app_rss_mb']['peak']} MB"
        )
    extra = f" --delta-ms {args.delta_ms}" if args.delta_ms != 20 else ""
    extra += f" --attack {args.attack}" if args.attack else ""
    extra += " --stock" if args.stock else ""
    print(
        f"reproduce: python benchmarks/relay.py --calls {args.calls} "
        f"--seconds {args.seconds:g}{extra}"
    )


if __name__ == "__main__":
    main()
