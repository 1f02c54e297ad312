"""A Twilio Media Streams simulator: the caller's side of ``<Connect><Stream>``.

It behaves like Twilio where the bridge's correctness depends on it:

* the websocket upgrade carries ``X-Twilio-Signature`` computed over the public ``wss://`` URL
  (or none, or a wrong one, to test rejection);
* caller audio goes out as 160-byte (20 ms) μ-law ``media`` frames with string counters,
  paced every 20 ms x ``speed`` (``speed=0``: as fast as possible; ``0.1``: 10x faster);
* assistant audio is *played*: queued and consumed at 8000 bytes/s x ``speed``; a ``mark``
  is echoed only once the audio queued before it has played; ``clear`` drops queued audio
  and echoes pending marks at once;
* anything the server sends that is not a valid outbound ``media``/``mark``/``clear`` frame for
  this stream is recorded in ``violations`` (Twilio would fail the stream with error 31924).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.polling import poll

__all__ = ["ClearRecord", "TwilioMediaSimulator"]

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
FRAME_MS = 20
BYTES_PER_SECOND = 8000
SILENCE = b"\xff"


@dataclass(frozen=True, slots=True)
class ClearRecord:
    """A ``clear`` as Twilio saw it: when, and how much queued audio it discarded."""

    at: float  # time.monotonic()
    played_bytes: int
    dropped_bytes: int
    marks_echoed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _QueuedMark:
    name: str


class TwilioMediaSimulator:
    """Drive one simulated call against ``url`` (``ws://127.0.0.1:PORT/twilio/media-stream``)."""

    def __init__(
        self,
        url: str,
        *,
        auth_token: str = "twilio-test-token",
        public_url: str = "wss://clinic.example/twilio/media-stream",
        signature: Literal["valid", "none", "wrong"] = "valid",
        speed: float = 0.1,
        call_sid: str = "CA00000000000000000000000000000001",
        stream_sid: str = "MZ00000000000000000000000000000001",
        account_sid: str = "AC00000000000000000000000000000001",
        custom_parameters: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        auto_start: bool = True,
    ) -> None:
        self.url = url
        self.auth_token = auth_token
        self.public_url = public_url
        self.signature = signature
        self.speed = speed
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self.extra_headers = dict(extra_headers or {})
        self.auto_start = auto_start

        self.played = bytearray()
        self.media_received_bytes = 0
        self.marks_echoed: list[str] = []
        self.clears: list[ClearRecord] = []
        self.received: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.audio_sent = 0
        self.close_code: int | None = None
        self.close_reason: str = ""

        self._ws: ClientConnection | None = None
        self._sequence = 0
        self._chunk = 0
        self._queue: deque[bytes | _QueuedMark] = deque()
        self._wakeup = asyncio.Event()
        self._closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------- lifecycle

    def signature_headers(self) -> dict[str, str]:
        """Headers Twilio would send on the upgrade, per the ``signature`` mode."""
        headers = dict(self.extra_headers)
        if self.signature == "none":
            return headers
        token = self.auth_token if self.signature == "valid" else self.auth_token + "-wrong"
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(
            self.public_url, {}
        )
        return headers

    async def connect(self) -> TwilioMediaSimulator:
        """Open the websocket (raises ``websockets.InvalidStatus`` if the upgrade is refused)."""
        self._ws = await connect(
            self.url,
            additional_headers=self.signature_headers(),
            ping_interval=None,
            max_size=2**22,
        )
        self._tasks = [
            asyncio.create_task(self._receive(), name="twilio-sim-receive"),
            asyncio.create_task(self._play(), name="twilio-sim-play"),
        ]
        if self.auto_start:
            await self.start()
        return self

    async def close(self, code: int = 1000) -> None:
        """Close from Twilio's side (the call ended) and stop the background tasks."""
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.close(code)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def __aenter__(self) -> TwilioMediaSimulator:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def queued_bytes(self) -> int:
        """Assistant audio received but not yet played."""
        return sum(len(e) for e in self._queue if isinstance(e, bytes))

    @property
    def is_playing(self) -> bool:
        return self.queued_bytes > 0

    # ------------------------------------------------------------ caller -> server

    def _next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def send_json(self, frame: Mapping[str, Any]) -> None:
        await self.send_raw(json.dumps(frame))

    async def send_raw(self, text: str | bytes) -> None:
        """Send anything, malformed frames included."""
        if self._ws is None:
            raise RuntimeError("not connected")
        await self._ws.send(text)

    async def start(self) -> None:
        """``connected`` then ``start``, as Twilio opens every stream."""
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send_json(
            {
                "event": "start",
                "sequenceNumber": self._next_sequence(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    async def send_media(
        self,
        payload: bytes,
        *,
        sequence_number: str | None = None,
        chunk: str | None = None,
        timestamp: str | None = None,
    ) -> None:
        """One ``media`` frame; override the counters to send out-of-order frames."""
        self._chunk += 1
        await self.send_json(
            {
                "event": "media",
                "sequenceNumber": sequence_number or self._next_sequence(),
                "streamSid": self.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": chunk or str(self._chunk),
                    "timestamp": timestamp or str((self._chunk - 1) * FRAME_MS),
                    "payload": base64.b64encode(payload).decode("ascii"),
                },
            }
        )
        self.audio_sent += len(payload)

    async def send_audio(self, ulaw: bytes) -> int:
        """Stream caller audio as 20 ms frames, paced like a phone line (x ``speed``).

        Stops quietly when the server closes the stream (Twilio stops streaming then too);
        returns the number of bytes sent.
        """
        frame_time = FRAME_MS / 1000 * self.speed
        due = time.monotonic()
        sent = 0
        for offset in range(0, len(ulaw), FRAME_BYTES):
            if self._closed.is_set():
                break
            frame = ulaw[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, SILENCE)
            try:
                await self.send_media(frame)
            except ConnectionClosed:
                break
            sent += len(frame)
            if frame_time > 0:
                due += frame_time
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            else:
                await asyncio.sleep(0)
        return sent

    async def send_silence(self, ms: int) -> int:
        return await self.send_audio(SILENCE * (ms * BYTES_PER_SECOND // 1000))

    async def send_dtmf(self, digit: str) -> None:
        await self.send_json(
            {
                "event": "dtmf",
                "sequenceNumber": self._next_sequence(),
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def send_stop(self) -> None:
        await self.send_json(
            {
                "event": "stop",
                "sequenceNumber": self._next_sequence(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )

    async def hangup(self) -> None:
        """The caller hangs up: ``stop``, then Twilio closes the socket."""
        with contextlib.suppress(ConnectionClosed):
            await self.send_stop()
        await self.close()

    # ------------------------------------------------------------ server -> caller

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                await self._on_frame(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason or ""
            self._closed.set()
            self._wakeup.set()

    def _violation(self, message: str) -> None:
        self.violations.append(f"31924 {message}")

    async def _on_frame(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self._violation("binary frame; Twilio expects JSON text")
            return
        try:
            frame = json.loads(message)
        except ValueError:
            self._violation("frame is not JSON")
            return
        if not isinstance(frame, dict):
            self._violation("frame is not a JSON object")
            return
        event = frame.get("event")
        if frame.get("streamSid") != self.stream_sid:
            self._violation(f"{event!r} frame without this stream's streamSid")
            return
        if event == "media":
            self._on_media(frame)
        elif event == "mark":
            mark = frame.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                self._violation("mark without mark.name")
                return
            self.received.append(frame)
            self._enqueue(_QueuedMark(name))
        elif event == "clear":
            self.received.append(frame)
            await self._on_clear()
        else:
            self._violation(f"unsupported outbound event {event!r}")

    def _on_media(self, frame: dict[str, Any]) -> None:
        media = frame.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._violation("media without media.payload")
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._violation("media payload is not base64")
            return
        self.received.append(frame)
        self.media_received_bytes += len(audio)
        if audio:
            self._enqueue(audio)

    def _enqueue(self, entry: bytes | _QueuedMark) -> None:
        self._queue.append(entry)
        self._wakeup.set()

    async def _on_clear(self) -> None:
        dropped = 0
        marks: list[str] = []
        for entry in self._queue:
            if isinstance(entry, bytes):
                dropped += len(entry)
            else:
                marks.append(entry.name)
        self._queue.clear()
        self.clears.append(ClearRecord(time.monotonic(), len(self.played), dropped, tuple(marks)))
        for name in marks:
            await self._echo_mark(name)

    async def _echo_mark(self, name: str) -> None:
        self.marks_echoed.append(name)
        frame = {
            "event": "mark",
            "sequenceNumber": self._next_sequence(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        }
        with contextlib.suppress(ConnectionClosed):
            await self.send_json(frame)

    async def _play(self) -> None:
        """Consume queued audio at 8000 bytes/s x speed; echo marks as they are reached."""
        due: float | None = None
        while not self._closed.is_set():
            if not self._queue:
                due = None
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            head = self._queue[0]
            if isinstance(head, _QueuedMark):
                self._queue.popleft()
                await self._echo_mark(head.name)
                continue
            frame = head[:FRAME_BYTES]
            if len(head) > FRAME_BYTES:
                self._queue[0] = head[FRAME_BYTES:]
            else:
                self._queue.popleft()
            frame_time = len(frame) / BYTES_PER_SECOND * self.speed
            if frame_time > 0:
                now = time.monotonic()
                due = max(due or now, now) + frame_time
                await asyncio.sleep(due - now)
            else:
                await asyncio.sleep(0)
            self.played += frame

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Callable[[TwilioMediaSimulator], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, deadline is the point
    ) -> Any:
        """Poll ``predicate(self)`` until truthy; return its value or raise ``TimeoutError``."""
        return await poll(lambda: predicate(self), timeout, 0.002)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:  # noqa: ASYNC109
        """Wait until the server closes the stream; return the close code."""
        async with asyncio.timeout(timeout):
            await self._closed.wait()
        return self.close_code

    async def wait_played(self, nbytes: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda sim: len(sim.played) >= nbytes, timeout)

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until everything queued has played (and its marks were echoed)."""
        await self.wait_for(lambda sim: not sim._queue, timeout)
