"""A local fake of the OpenAI Realtime API (GA interface) that checks everything it receives.

Aim the official SDK at it and drive a call with a script::

    async with FakeRealtimeServer([SpeakTurn("Olá!"), UserTurn("Quero marcar"), ...]) as server:
        client = AsyncOpenAI(api_key="test", base_url=server.base_url)
        async with client.realtime.connect(model="gpt-realtime") as conn:
            ...
        assert server.violations == []

Wire facts mirrored from the SDK and the API: the SDK connects to
``ws://HOST:PORT/v1/realtime?model=...`` with ``Authorization: Bearer <key>`` and no
``OpenAI-Beta`` header (GA). Every client event is validated against the SDK's own pydantic
models plus an unknown-field walk; every event the fake sends is validated too (the SDK does not
validate what it receives, so a sloppy fake would hide bugs). Invalid client events are answered
with an ``error`` event, as the real API does, and recorded in ``violations``.

Run standalone for benchmarks: ``python -m tests.fakes.realtime_server --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.audio import tone
from tests.fakes.polling import poll
from tests.fakes.realtime_script import (
    FailedTurn,
    FunctionCallTurn,
    ResponseStep,
    SpeakTurn,
    Step,
    UserTurn,
)
from tests.fakes.realtime_validation import (
    EventProblem,
    validate_client_event,
    validate_server_event,
)
from tests.fakes.vad import AudioFormat, EnergyVad, SpeechStarted, VadConfig

__all__ = [
    "FakeRealtimeServer",
    "FakeRealtimeSession",
    "FunctionCallTurn",
    "ResponseRecord",
    "SpeakTurn",
    "TruncationRecord",
    "UserTurn",
]

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"

DEFAULT_SESSION: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
                "create_response": True,
                "interrupt_response": True,
            },
            "transcription": None,
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
    },
    "tools": [],
    "tool_choice": "auto",
}


@dataclass(frozen=True, slots=True)
class TruncationRecord:
    item_id: str
    content_index: int
    audio_end_ms: int
    audio_sent_ms: int


@dataclass(slots=True)
class ResponseRecord:
    """One response the fake produced; ``audio_bytes`` is what was actually sent."""

    response_id: str
    step: ResponseStep | None
    status: str = "in_progress"
    item_ids: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    out_of_band: bool = False
    metadata: dict[str, str] | None = None


@dataclass(slots=True)
class _DropPolicy:
    events: int | None
    seconds: float | None
    remaining: int


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``session.update`` semantics: given fields replace, nested objects merge.

    An object whose ``type`` changes (audio format, turn detection) is replaced whole, so no
    field of the old variant survives (``rate`` of ``audio/pcm`` does not exist on ``audio/pcmu``).
    """
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if (
            isinstance(value, dict)
            and isinstance(old, dict)
            and value.get("type") == old.get("type")
        ):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class FakeRealtimeSession:
    """One websocket connection: the session state, the script cursor and what was received."""

    def __init__(self, server: FakeRealtimeServer, ws: ServerConnection, model: str) -> None:
        self._server = server
        self._ws = ws
        self.model = model
        self.headers: Headers = ws.request.headers if ws.request else Headers()
        self.config: dict[str, Any] = _deep_merge(DEFAULT_SESSION, {"model": model})
        self.client_events: list[Any] = []
        self.invalid_events: list[str] = []
        self.received_count = 0
        self.server_events: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.errors_sent: list[dict[str, Any]] = []
        self.audio_in = bytearray()
        self.tool_outputs: dict[str, str] = {}
        self.truncations: list[TruncationRecord] = []
        self.responses: list[ResponseRecord] = []
        self.transcripts: list[str] = []
        self.unscripted_speech = 0
        self.closed = False
        self.dropped = False
        self._script: list[Step] = list(server.script)
        self._cursor = 0
        self._ids = itertools.count(1)
        self._item_audio_bytes: dict[str, int] = {}
        self._out_of_band_items: set[str] = set()  # not in the conversation: not truncatable
        self._uncommitted_bytes = 0
        self._open_calls: set[str] = set()
        self._issued_calls: set[str] = set()
        self._active: ResponseRecord | None = None
        self._active_task: asyncio.Task[None] | None = None
        self._late_transcripts: set[asyncio.Task[None]] = set()
        self._cancel_reason: Literal["turn_detected", "client_cancelled"] | None = None
        self._speech_item: str | None = None
        self._last_item: str | None = None
        self._drop_at_event: int | None = None
        self._vad = EnergyVad(self._vad_config(), self._input_format())

    # ----------------------------------------------------------------- helpers

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}"

    def _turn_detection(self) -> dict[str, Any] | None:
        return self.config.get("audio", {}).get("input", {}).get("turn_detection")

    def _input_format(self) -> AudioFormat:
        fmt = self.config.get("audio", {}).get("input", {}).get("format") or {}
        return AudioFormat.for_type(fmt.get("type", "audio/pcm"))

    def _output_format(self) -> AudioFormat:
        fmt = self.config.get("audio", {}).get("output", {}).get("format") or {}
        return AudioFormat.for_type(fmt.get("type", "audio/pcm"))

    def _vad_config(self) -> VadConfig:
        td = self._turn_detection() or {}
        base = self._server.vad
        return VadConfig(
            rms_threshold=base.rms_threshold,
            min_speech_ms=base.min_speech_ms,
            silence_ms=td.get("silence_duration_ms") or base.silence_ms,
            prefix_padding_ms=td.get("prefix_padding_ms") or base.prefix_padding_ms,
        )

    def _output_audio(self, ms: int) -> bytes:
        fmt = self._output_format().bytes_per_ms
        if fmt == 8:
            return tone(ms)
        return b"\x00\x10" * (ms * fmt // 2)  # quiet non-zero pcm16

    def _violation(self, message: str) -> None:
        log.warning("realtime fake: protocol violation: %s", message)
        self.violations.append(message)

    async def send(self, event: dict[str, Any]) -> None:
        """Validate an outgoing event against the SDK's models, then send it."""
        event = {"event_id": self._id("event"), **event}
        if self._server.validate_outgoing:
            problem = validate_server_event(event)
            if problem is not None:
                self._violation(f"fake sent an invalid {event['type']}: {problem.message}")
        if self._server.keep_history:
            self.server_events.append(event)
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(json.dumps(event))

    async def _error(
        self, problem: EventProblem, client_event_id: str | None, *, violation: bool = True
    ) -> None:
        error: dict[str, Any] = {
            "type": "invalid_request_error",
            "code": problem.code,
            "message": problem.message,
            "param": problem.param,
            "event_id": client_event_id,
        }
        self.errors_sent.append(error)
        if violation:
            self._violation(f"{problem.code}: {problem.message}")
        await self.send({"type": "error", "error": error})

    # -------------------------------------------------------------- main loop

    async def run(self) -> None:
        await self.send({"type": "session.created", "session": self.config})
        async for raw in self._ws:
            if isinstance(raw, bytes):
                self._violation("binary frame received; the API expects JSON text frames")
                continue
            self.received_count += 1
            await self._on_raw(raw)
            if self._drop_at_event is not None and self.received_count >= self._drop_at_event:
                self.drop()
                return

    async def shutdown(self) -> None:
        """Stop a response still streaming when the connection ends."""
        self.closed = True
        for task in [self._active_task, *self._late_transcripts]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def drop(self) -> None:
        """Abort the TCP connection without a close frame (an abrupt network failure)."""
        self.dropped = True
        self._ws.transport.abort()

    def arm_drop(self, events: int | None, seconds: float | None) -> None:
        if events is not None:
            self._drop_at_event = self.received_count + events
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, self.drop)

    async def _on_raw(self, raw: str) -> None:
        event, problem = validate_client_event(raw)
        if problem is not None:
            # Like the real API: an event with an unknown or invalid field is rejected whole.
            self.invalid_events.append(raw)
            await self._error(problem, getattr(event, "event_id", None))
            return
        if self._server.keep_history:
            self.client_events.append(event)
        handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
        if handler is not None:
            await handler(event)

    # --------------------------------------------------------------- handlers

    async def _on_session_update(self, event: Any) -> None:
        update = event.session.model_dump(mode="json", exclude_unset=True)
        if update.get("type") != "realtime":
            await self._error(
                EventProblem("invalid_value", "Only realtime sessions are supported here"),
                event.event_id,
            )
            return
        merged = _deep_merge(self.config, update)
        voice = merged.get("audio", {}).get("output", {}).get("voice")
        old_voice = self.config.get("audio", {}).get("output", {}).get("voice")
        if voice != old_voice and any(self._item_audio_bytes.values()):
            await self._error(
                EventProblem(
                    "cannot_update_voice",
                    "Cannot update a conversation's voice if assistant audio is present.",
                    "session.audio.output.voice",
                ),
                event.event_id,
            )
            return
        self.config = merged
        self._vad.config = self._vad_config()
        self._vad.set_format(self._input_format())
        await self.send({"type": "session.updated", "session": self.config})

    async def _on_input_audio_buffer_append(self, event: Any) -> None:
        try:
            audio = base64.b64decode(event.audio, validate=True)
        except (binascii.Error, ValueError):
            await self._error(
                EventProblem("invalid_value", "Invalid 'audio': not valid base64", "audio"),
                event.event_id,
            )
            return
        if self._server.keep_history:
            self.audio_in += audio
        self._uncommitted_bytes += len(audio)
        if self._turn_detection() is None:
            return
        for change in self._vad.feed(audio):
            if isinstance(change, SpeechStarted):
                await self._speech_started(change.audio_start_ms)
            else:
                await self._speech_stopped(change.audio_end_ms)

    async def _speech_started(self, audio_start_ms: int) -> None:
        self._speech_item = self._id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item,
            }
        )
        td = self._turn_detection() or {}
        if self._active is not None and td.get("interrupt_response", True):
            await self._cancel_active("turn_detected")

    async def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self._speech_item or self._id("item")
        self._speech_item = None
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        await self._commit(item_id)
        td = self._turn_detection() or {}
        if td.get("create_response", True):
            await self._trigger_response()

    async def _on_input_audio_buffer_commit(self, event: Any) -> None:
        buffered_ms = self._uncommitted_bytes // self._input_format().bytes_per_ms
        if buffered_ms < 100:
            await self._error(
                EventProblem(
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"100ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
                ),
                event.event_id,
            )
            return
        await self._commit(self._id("item"))

    async def _on_input_audio_buffer_clear(self, event: Any) -> None:
        self._uncommitted_bytes = 0
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str) -> None:
        self._uncommitted_bytes = 0
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": self._last_item,
            }
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": self._last_item}
        )
        self._last_item = item_id
        step = self._peek()
        delay = 0.0
        if isinstance(step, UserTurn):
            self._cursor += 1
            transcript, delay = step.transcript, step.transcript_delay
        else:
            self.unscripted_speech += 1
            transcript = ""
        self.transcripts.append(transcript)
        if not self.config.get("audio", {}).get("input", {}).get("transcription"):
            return  # like the API: no input transcription unless the session asks for it
        if delay > 0:
            task = asyncio.create_task(self._send_transcript(item_id, transcript, delay))
            self._late_transcripts.add(task)
            task.add_done_callback(self._late_transcripts.discard)
            return
        await self._send_transcript(item_id, transcript)

    async def _send_transcript(self, item_id: str, transcript: str, delay: float = 0.0) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
            if self.closed:
                return
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": 1.0},
            }
        )

    async def _on_conversation_item_create(self, event: Any) -> None:
        item = event.item
        item_id = item.id or self._id("item")
        if item.type == "function_call_output":
            if item.call_id not in self._issued_calls:
                await self._error(
                    EventProblem(
                        "invalid_value",
                        f"No tool call found for function call output with call_id {item.call_id}.",
                        "item.call_id",
                    ),
                    event.event_id,
                )
                return
            self.tool_outputs[item.call_id] = item.output
            self._open_calls.discard(item.call_id)
        payload = {**item.model_dump(mode="json", exclude_unset=True), "id": item_id}
        payload.setdefault("object", "realtime.item")
        payload.setdefault("status", "completed")
        await self.send(
            {
                "type": "conversation.item.added",
                "item": payload,
                "previous_item_id": self._last_item,
            }
        )
        await self.send(
            {"type": "conversation.item.done", "item": payload, "previous_item_id": self._last_item}
        )
        self._last_item = item_id

    async def _on_response_create(self, event: Any) -> None:
        if self._active is not None:
            await self._error(
                EventProblem(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self._active.response_id}. Wait until the response is finished before "
                    "creating a new one.",
                ),
                event.event_id,
            )
            return
        options = getattr(event, "response", None)
        out_of_band = options is not None and getattr(options, "conversation", None) == "none"
        if self._open_calls and not out_of_band:
            self._violation(
                f"response.create before function_call_output for {sorted(self._open_calls)}"
            )
        metadata = getattr(options, "metadata", None) if options is not None else None
        await self._trigger_response(out_of_band=out_of_band, metadata=metadata)

    async def _on_response_cancel(self, event: Any) -> None:
        if self._active is None:
            await self._error(
                EventProblem(
                    "response_cancel_not_active", "Cancellation failed: no active response found"
                ),
                event.event_id,
                violation=False,
            )
            return
        await self._cancel_active("client_cancelled")

    async def _on_conversation_item_truncate(self, event: Any) -> None:
        sent = self._item_audio_bytes.get(event.item_id)
        if sent is None or event.item_id in self._out_of_band_items:
            await self._error(
                EventProblem(
                    "item_truncate_invalid_item_id",
                    f"Item with item_id '{event.item_id}' not found or has no audio.",
                    "item_id",
                ),
                event.event_id,
            )
            return
        sent_ms = sent // self._output_format().bytes_per_ms
        if event.content_index != 0:
            await self._error(
                EventProblem("invalid_value", "Only content_index 0 has audio", "content_index"),
                event.event_id,
            )
            return
        if event.audio_end_ms > sent_ms:
            await self._error(
                EventProblem(
                    "invalid_value",
                    f"Audio content of {sent_ms}ms is already shorter than {event.audio_end_ms}ms",
                    "audio_end_ms",
                ),
                event.event_id,
            )
            return
        self.truncations.append(
            TruncationRecord(event.item_id, event.content_index, event.audio_end_ms, sent_ms)
        )
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": event.item_id,
                "content_index": event.content_index,
                "audio_end_ms": event.audio_end_ms,
            }
        )

    async def _on_output_audio_buffer_clear(self, event: Any) -> None:
        await self._error(
            EventProblem(
                "invalid_value",
                "output_audio_buffer.clear is only supported for WebRTC and SIP; "
                "websocket clients truncate with conversation.item.truncate",
            ),
            event.event_id,
        )

    # -------------------------------------------------------------- responses

    def _peek(self) -> Step | None:
        if self._cursor >= len(self._script) and self._server.loop_script and self._script:
            self._cursor = 0
        return self._script[self._cursor] if self._cursor < len(self._script) else None

    async def _trigger_response(
        self, *, out_of_band: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        if self._active_task is not None and not self._active_task.done():
            await self._active_task  # VAD without interrupt_response: answer after this one
        step = self._peek()
        if isinstance(step, SpeakTurn) or (
            isinstance(step, FunctionCallTurn | FailedTurn) and not out_of_band
        ):
            self._cursor += 1
        else:
            step = None
        record = ResponseRecord(self._id("resp"), step)
        record.out_of_band = out_of_band
        record.metadata = metadata
        self.responses.append(record)
        self._active = record
        self._cancel_reason = None
        self._active_task = asyncio.create_task(self._play(record))

    async def _cancel_active(self, reason: Literal["turn_detected", "client_cancelled"]) -> None:
        task = self._active_task
        if task is None or task.done():
            return
        self._cancel_reason = reason
        await task

    def _cancelled(self) -> bool:
        return self._cancel_reason is not None

    async def _play(self, record: ResponseRecord) -> None:
        try:
            if self._server.response_delay:
                await asyncio.sleep(self._server.response_delay)
            response = {
                "id": record.response_id,
                "object": "realtime.response",
                "status": "in_progress",
                "output": [],
                "output_modalities": ["audio"],
                "conversation_id": None if record.out_of_band else "conv_fake",
            }
            if record.metadata:
                response["metadata"] = record.metadata
            await self.send({"type": "response.created", "response": response})
            outputs: list[dict[str, Any]] = []
            step = record.step
            if isinstance(step, SpeakTurn):
                outputs.append(await self._speak(record, 0, step.transcript, step.audio_ms))
            elif isinstance(step, FunctionCallTurn):
                if step.say is not None:
                    outputs.append(await self._speak(record, 0, step.say, step.say_audio_ms))
                if not self._cancelled():
                    outputs.append(await self._function_call(record, len(outputs), step))
            record.status = "cancelled" if self._cancelled() else "completed"
            if isinstance(step, FailedTurn):
                record.status = "failed"
            done: dict[str, Any] = {**response, "status": record.status, "output": outputs}
            if self._cancel_reason is not None:
                done["status_details"] = {"type": "cancelled", "reason": self._cancel_reason}
            elif isinstance(step, FailedTurn):
                error = {"type": step.error_type, "code": step.code}
                done["status_details"] = {"type": "failed", "error": error}
            await self.send({"type": "response.done", "response": done})
            await self.send(
                {
                    "type": "rate_limits.updated",
                    "rate_limits": [
                        {
                            "name": "requests",
                            "limit": 5000,
                            "remaining": 4999,
                            "reset_seconds": 0.01,
                        },
                        {
                            "name": "tokens",
                            "limit": 40000,
                            "remaining": 39000,
                            "reset_seconds": 1.5,
                        },
                    ],
                }
            )
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug in the fake must fail the test, not vanish in a task
            self._violation(f"fake bug while responding: {exc!r}")
            raise
        finally:
            self._active = None

    async def _speak(
        self, record: ResponseRecord, output_index: int, transcript: str, audio_ms: int
    ) -> dict[str, Any]:
        item_id = self._id("item")
        record.item_ids.append(item_id)
        self._item_audio_bytes[item_id] = 0
        if record.out_of_band:
            self._out_of_band_items.add(item_id)
        where = {"response_id": record.response_id, "item_id": item_id}
        indexed = {**where, "output_index": output_index, "content_index": 0}
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": record.response_id,
                "output_index": output_index,
                "item": item,
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": self._last_item}
        )
        self._last_item = item_id
        await self.send(
            {
                "type": "response.content_part.added",
                **indexed,
                "part": {"type": "audio", "transcript": ""},
            }
        )
        await self.send(
            {"type": "response.output_audio_transcript.delta", **indexed, "delta": transcript}
        )
        bytes_per_ms = self._output_format().bytes_per_ms
        chunk_ms = self._server.chunk_ms
        audio = self._output_audio(audio_ms)
        step = chunk_ms * bytes_per_ms
        pace = self._server.audio_pace
        started = time.monotonic()
        for offset in range(0, len(audio), step):
            if self._cancelled():
                break
            chunk = audio[offset : offset + step]
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **indexed,
                    "delta": base64.b64encode(chunk).decode("ascii"),
                }
            )
            self._item_audio_bytes[item_id] += len(chunk)
            record.audio_bytes += len(chunk)
            if pace > 0:
                due = started + (offset + len(chunk)) / bytes_per_ms / 1000 * pace
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            else:
                await asyncio.sleep(0)
        status = "incomplete" if self._cancelled() else "completed"
        await self.send({"type": "response.output_audio.done", **indexed})
        await self.send(
            {"type": "response.output_audio_transcript.done", **indexed, "transcript": transcript}
        )
        part = {"type": "audio", "transcript": transcript}
        await self.send({"type": "response.content_part.done", **indexed, "part": part})
        done_item = {
            **item,
            "status": status,
            "content": [{"type": "output_audio", "transcript": transcript}],
        }
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": record.response_id,
                "output_index": output_index,
                "item": done_item,
            }
        )
        await self.send({"type": "conversation.item.done", "item": done_item})
        return done_item

    async def _function_call(
        self, record: ResponseRecord, output_index: int, step: FunctionCallTurn
    ) -> dict[str, Any]:
        item_id = self._id("item")
        call_id = step.call_id or self._id("call")
        record.item_ids.append(item_id)
        arguments = json.dumps(step.arguments, ensure_ascii=False)
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": step.name,
            "call_id": call_id,
            "arguments": "",
        }
        head = {"response_id": record.response_id, "output_index": output_index}
        await self.send({"type": "response.output_item.added", **head, "item": item})
        await self.send(
            {"type": "conversation.item.added", "item": item, "previous_item_id": self._last_item}
        )
        self._last_item = item_id
        where = {**head, "item_id": item_id, "call_id": call_id}
        await self.send(
            {"type": "response.function_call_arguments.delta", **where, "delta": arguments}
        )
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": step.name,
                "arguments": arguments,
            }
        )
        done_item = {**item, "status": "completed", "arguments": arguments}
        await self.send({"type": "response.output_item.done", **head, "item": done_item})
        await self.send({"type": "conversation.item.done", "item": done_item})
        self._issued_calls.add(call_id)
        self._open_calls.add(call_id)
        return done_item


class FakeRealtimeServer:
    """Websocket server on 127.0.0.1 speaking the Realtime API; one session per connection.

    ``script`` is copied for every connection. Knobs: ``audio_pace`` (seconds of wall time per
    second of generated audio; 0 = as fast as possible, like the real API's bursts),
    ``chunk_ms`` (audio per delta), ``response_delay`` (seconds before each response starts),
    ``refuse_connections`` (answer the upgrade with HTTP 500), :meth:`drop_after`.
    ``keep_history=False`` (long benchmark runs) keeps no event/audio log and forgets closed
    sessions; violations of live sessions are still recorded.
    """

    def __init__(
        self,
        script: Sequence[Step] = (),
        *,
        api_key: str = "test",
        host: str = "127.0.0.1",
        port: int = 0,
        audio_pace: float = 0.0,
        chunk_ms: int = 100,
        response_delay: float = 0.0,
        vad: VadConfig | None = None,
        loop_script: bool = False,
        validate_outgoing: bool = True,
        keep_history: bool = True,
    ) -> None:
        self.script: tuple[Step, ...] = tuple(script)
        self.api_key = api_key
        self.host = host
        self.port = port
        self.audio_pace = audio_pace
        self.chunk_ms = chunk_ms
        self.response_delay = response_delay
        self.vad = vad or VadConfig()
        self.loop_script = loop_script
        self.validate_outgoing = validate_outgoing
        self.keep_history = keep_history
        self.refuse_connections = False
        self.sessions: list[FakeRealtimeSession] = []
        self.rejected: list[str] = []
        self._retired_violations: list[str] = []
        self._drop: _DropPolicy | None = None
        self._server: Server | None = None

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> FakeRealtimeServer:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=16 * 2**20,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeRealtimeServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def websocket_base_url(self) -> str:
        """For ``AsyncOpenAI(websocket_base_url=...)``."""
        return f"ws://{self.host}:{self.port}/v1"

    # -------------------------------------------------------------- inspection

    @property
    def session(self) -> FakeRealtimeSession:
        """The most recent session (most tests have exactly one)."""
        if not self.sessions:
            raise LookupError("no client has connected to the fake Realtime server")
        return self.sessions[-1]

    @property
    def violations(self) -> list[str]:
        """Protocol violations across all sessions; tests assert this is empty."""
        return self._retired_violations + [v for s in self.sessions for v in s.violations]

    @property
    def client_events(self) -> list[Any]:
        return [e for s in self.sessions for e in s.client_events]

    @property
    def tool_outputs(self) -> dict[str, str]:
        return {k: v for s in self.sessions for k, v in s.tool_outputs.items()}

    @property
    def truncations(self) -> list[TruncationRecord]:
        return [t for s in self.sessions for t in s.truncations]

    @property
    def audio_in(self) -> bytes:
        return b"".join(bytes(s.audio_in) for s in self.sessions)

    def events_of_type(self, event_type: str) -> list[Any]:
        return [e for e in self.client_events if e.type == event_type]

    async def wait_for(
        self,
        predicate: Callable[[FakeRealtimeServer], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, deadline is the point
    ) -> Any:
        """Poll ``predicate(self)`` until truthy; return its value or raise ``TimeoutError``."""
        return await poll(lambda: predicate(self), timeout, 0.005)

    # ---------------------------------------------------------- fault injection

    def drop_after(
        self, events: int | None = None, seconds: float | None = None, sessions: int = 1
    ) -> None:
        """Abort the connection after ``events`` more client events or ``seconds``.

        Applies to the live session if there is one, else to the next ``sessions`` sessions
        to connect (counted from their connection). Reconnections after that are healthy.
        """
        if events is None and seconds is None:
            raise ValueError("give events or seconds")
        live = [s for s in self.sessions if not s.closed and not s.dropped]
        for live_session in live[:sessions]:
            live_session.arm_drop(events, seconds)
        remaining = sessions - len(live[:sessions])
        self._drop = _DropPolicy(events, seconds, remaining) if remaining > 0 else None

    # ------------------------------------------------------------------- wire

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if self.refuse_connections:
            self.rejected.append("refused")
            return connection.respond(500, "Internal server error\n")
        if url.path != REALTIME_PATH:
            self.rejected.append(f"path {url.path}")
            return connection.respond(404, "Not found\n")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.rejected.append("authorization")
            body = json.dumps(
                {"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                           "message": "Incorrect API key provided."}}
            )  # fmt: skip
            return connection.respond(401, body)
        if not query.get("model") and not query.get("call_id"):
            self.rejected.append("no model")
            return connection.respond(400, "Missing model\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        model = parse_qs(urlsplit(request.path).query).get("model", ["gpt-realtime"])[0]
        session = FakeRealtimeSession(self, ws, model)
        self.sessions.append(session)
        beta = request.headers.get("OpenAI-Beta")
        if beta and "realtime" in beta:
            session.violations.append(f"beta header sent to the GA interface: {beta}")
        if self._drop is not None and self._drop.remaining > 0:
            self._drop.remaining -= 1
            session.arm_drop(self._drop.events, self._drop.seconds)
        try:
            await session.run()
        except ConnectionClosed:
            pass
        finally:
            await session.shutdown()
            if not self.keep_history:
                self.sessions.remove(session)
                self._retired_violations += session.violations


def _default_script(speak_ms: int) -> list[Step]:
    return [
        SpeakTurn("Olá! Clínica Exemplo, como posso ajudar?", audio_ms=speak_ms),
        UserTurn("Quero marcar uma consulta."),
        SpeakTurn("Claro! Para qual especialidade?", audio_ms=speak_ms),
    ]


async def _serve_forever(args: argparse.Namespace) -> None:
    server = FakeRealtimeServer(
        _default_script(args.speak_ms),
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        audio_pace=args.pace,
        loop_script=True,
        validate_outgoing=not args.no_validate_outgoing,
        keep_history=False,
    )
    async with server:
        log.info("fake realtime server on %s", server.base_url)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI Realtime API server (GA).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="test")
    parser.add_argument("--speak-ms", type=int, default=2000, help="audio per scripted answer")
    parser.add_argument("--pace", type=float, default=0.0, help="0 = burst, 1 = real time")
    parser.add_argument("--no-validate-outgoing", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
