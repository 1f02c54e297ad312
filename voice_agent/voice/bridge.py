"""One phone call: Twilio Media Streams ↔ OpenAI Realtime, with barge-in, tools and call control.

Three tasks per call, none ever waiting on another: the Twilio reader (caller audio into a
queue, marks, DTMF, stop), the OpenAI writer (drains that queue), and the OpenAI reader (audio
to the caller followed by a mark, barge-in, tool calls, transcripts). A watchdog enforces the
idle timeout and the maximum call length. When any of them ends the call, every task of the
call is cancelled and awaited, so nothing leaks.

The audio path is the hot path (about 175 messages a second per call), so per message it
allocates no value objects: caller frames are decoded straight to bytes and sent to OpenAI in
60 ms batches (a third of the messages, at most 40 ms of extra delay before the server's VAD
hears speech), model audio is forwarded with a JSON prefix built once per call, and a mark
follows every 100 ms of it rather than every delta. Both websockets use the fast paths of
``voice/relay_sockets/``.

Safety first: every caller transcript goes through the red-flag detector. On a red flag the call
is flagged at once, the staff are alerted with the caller's number, booking tools are refused for
the rest of the call, and the model is told (a system item, then a response with instructions in
the call's language) to say the emergency number and offer the transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed

from voice_agent.settings import Settings
from voice_agent.store.tables import CallOutcome
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.call_records import CallRecorder
from voice_agent.voice.call_tasks import CallEnded
from voice_agent.voice.lines import VoiceLines
from voice_agent.voice.openai.connection import RealtimeConnector, RealtimeLink, session_config
from voice_agent.voice.openai.events import (
    AudioDelta,
    AudioDone,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
)
from voice_agent.voice.playback import PlaybackTracker, PlaybackWaiter
from voice_agent.voice.receptionist_call import CONNECT_TIMEOUT, DRAIN_TIMEOUT, ReceptionistCall
from voice_agent.voice.relay_sockets import AsgiTextSocket
from voice_agent.voice.twilio.protocol import (
    BadFrameGuard,
    Dtmf,
    FrameError,
    OutboundFrames,
    Stop,
    read_inbound,
)

logger = logging.getLogger(__name__)

AUDIO_BATCH_BYTES = 480  # 60 ms of caller audio per input_audio_buffer.append
AUDIO_BATCH_WAIT = 0.06  # a partial batch (the caller's stream paused) waits no longer
AUDIO_BACKLOG_BATCHES = 84  # 5 s of caller audio waiting for a slow OpenAI; older batches drop
MARK_EVERY_BYTES = 800  # a mark after every 100 ms of assistant audio (and after each item)
POLICY_VIOLATION = 1008  # close code for a Twilio stream that keeps sending garbage


class TwilioSocket(Protocol):
    """The part of a websocket the bridge uses (Starlette's WebSocket satisfies it)."""

    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class CallActions(Protocol):
    """How the call leaves the bridge: hang up, or put the caller through to staff."""

    async def hang_up(self, call_sid: str) -> None: ...

    async def transfer(self, call_sid: str, summary: str) -> None: ...

    async def fall_back(self, call_sid: str, reason: str) -> None: ...


class CallBridge(ReceptionistCall):
    def __init__(
        self,
        *,
        settings: Settings,
        twilio: TwilioSocket,
        stream_sid: str,
        call_sid: str,
        connector: RealtimeConnector,
        registry: ToolRegistry,
        context: ToolContext,
        recorder: CallRecorder,
        actions: CallActions,
        alert: Callable[[str, str], Awaitable[None]],
        instructions: str,
        lines: VoiceLines,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        # Starlette's receive_text/send_text wrappers cost more than the relay's own work.
        self.twilio: TwilioSocket = (
            AsgiTextSocket(twilio) if isinstance(twilio, WebSocket) else twilio
        )
        self.frames = OutboundFrames(stream_sid)
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.connector = connector
        self.registry = registry
        self.context = context
        self.recorder = recorder
        self.actions = actions
        self.alert = alert
        self.instructions = instructions
        self.lines = lines
        self.clock = clock
        self.tracker = PlaybackTracker(mark_every=MARK_EVERY_BYTES)
        self.playback = PlaybackWaiter(self.tracker)
        self.link: RealtimeLink | None = None
        self.record_sid = call_sid
        self._init_receptionist()
        self._audio: asyncio.Queue[bytes] = asyncio.Queue()
        self._caller_audio = bytearray()  # the batch being filled
        self._batch_timer: asyncio.TimerHandle | None = None
        self._reconnected = False
        self._link_ready = asyncio.Event()
        self._out_of_band_items: set[str] = set()
        self._manager: Any = None
        self._bad_frames = BadFrameGuard()

    # Entry point --------------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        """Run the call to its end and return its outcome; never raises for call faults."""
        try:
            if not await self._open_link():
                logger.error("realtime connection failed at call start")
                await self._fail_over("the AI voice service could not be reached")
                return self.outcome
            await self._configure(greet=True)
            self._link_ready.set()
            await self._run_tasks()
        finally:
            await self._close_link()
            await self._settle_tools()
            await self.context.services.booking.release_holds(self.context.conversation_id)
            self._record_bad_frames()
            await self.recorder.finish(self.outcome, error=self.error, flagged=self.flagged)
        return self.outcome

    async def _run_tasks(self) -> None:
        tasks = [
            asyncio.create_task(self._twilio_reader(), name="twilio-reader"),
            asyncio.create_task(self._openai_writer(), name="openai-writer"),
            asyncio.create_task(self._openai_reader(), name="openai-reader"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._ended.wait(), name="ended"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    if not isinstance(exc, CallEnded):
                        logger.error("call task %s failed: %s", task.get_name(), type(exc).__name__)
                        self.error = f"{task.get_name()}: {type(exc).__name__}"
                        self.outcome = CallOutcome.failed
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._batch_timer is not None:
                self._batch_timer.cancel()

    # Twilio → OpenAI ----------------------------------------------------------------------------

    async def _twilio_reader(self) -> None:
        receive = self.twilio.receive_text
        batch = self._caller_audio
        loop = asyncio.get_running_loop()
        while True:
            try:
                text = await receive()
            except Exception:  # disconnect of any kind: the caller is gone
                self._caller_left()
                raise CallEnded from None
            frame = read_inbound(text)
            if type(frame) is bytes:  # caller audio
                if not batch:
                    self._batch_timer = loop.call_later(AUDIO_BATCH_WAIT, self._cut_batch)
                batch += frame
                if len(batch) >= AUDIO_BATCH_BYTES:
                    self._cut_batch()
            elif type(frame) is str:  # an echoed mark
                self.playback.on_mark(frame)
            elif isinstance(frame, Dtmf):
                await self._on_dtmf(frame.digit)
            elif isinstance(frame, Stop):
                self._caller_left()
                raise CallEnded
            elif isinstance(frame, FrameError):
                await self._on_bad_frame(frame)

    async def _on_bad_frame(self, frame: FrameError) -> None:
        """Skip it; report only the first few; end a stream that keeps sending them."""
        verdict = self._bad_frames.add(frame.reason, self.clock())
        if verdict == "report":
            logger.warning("skipped a bad Twilio frame: %s", frame.reason)
            self.recorder.event("error", {"twilio_frame": frame.reason})
        elif verdict == "close":
            self.outcome = CallOutcome.failed
            self.error = f"Twilio stream closed: {self._bad_frames.count} bad frames"
            self._ending = True
            logger.warning("closing the Twilio stream: %s", self._bad_frames.summary())
            with contextlib.suppress(Exception):
                await self.twilio.close(POLICY_VIOLATION)
            raise CallEnded

    def _record_bad_frames(self) -> None:
        """One summary line and row for the bad frames that were only counted."""
        guard = self._bad_frames
        if guard.unreported:
            summary = guard.summary()
            logger.warning("bad Twilio frames on this call: %s", summary)
            self.recorder.event("error", {"twilio_frames": summary})

    def _cut_batch(self) -> None:
        """Queue the caller audio gathered so far for OpenAI (full batch, or waited enough)."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        if not self._caller_audio:
            return
        audio = bytes(self._caller_audio)
        self._caller_audio.clear()
        if self._audio.qsize() >= AUDIO_BACKLOG_BATCHES:
            self._audio.get_nowait()
        self._audio.put_nowait(audio)

    async def _openai_writer(self) -> None:
        while True:
            audio = await self._audio.get()
            await self._link_ready.wait()
            assert self.link is not None
            try:
                await self.link.append_audio(audio)
            except ConnectionClosed:
                await self._link_ready.wait()  # the reader reconnects; this frame is lost

    # OpenAI → Twilio ----------------------------------------------------------------------------

    async def _openai_reader(self) -> None:
        while True:
            assert self.link is not None
            try:
                async for event in self.link.events():
                    await self._on_event(event)
            except ConnectionClosed:
                pass
            if self._ending:
                raise CallEnded
            await self._reconnect()

    async def _on_event(self, event: ServerEvent) -> None:
        if type(event) is AudioDelta:  # the hot path first: ~50 a second
            await self._on_audio(event)
            return
        await self._on_model_event(event)

    async def _on_transport_event(self, event: ServerEvent) -> None:
        match event:
            case SpeechStarted():
                self._touch()
                await self._cut_playout()  # barge-in
            case SpeechStopped():
                self._touch()
            case AudioDone(item_id=item_id):
                await self._send_mark(self.tracker.flush_mark(item_id))

    async def _on_audio(self, event: AudioDelta) -> None:
        item_id = event.item_id
        delta = event.delta
        if not delta or self.tracker.should_drop(item_id):
            return
        state = self._responses.get(event.response_id)
        if state is not None:
            state.had_audio = True
            if state.out_of_band:
                self._out_of_band_items.add(item_id)
        mark = self.tracker.on_audio_sent(item_id, _b64_len(delta))
        await self._to_twilio(self.frames.media(delta))
        if mark is not None:
            await self._to_twilio(self.frames.mark(mark))

    async def _send_mark(self, mark: str | None) -> None:
        if mark is not None:
            await self._to_twilio(self.frames.mark(mark))

    async def _to_twilio(self, frame: str) -> None:
        try:
            await self.twilio.send_text(frame)
        except Exception:  # the caller's socket is gone: the call is over
            self._caller_left()
            raise CallEnded from None

    # What ReceptionistCall and CallLimits ask of this transport -----------------------------------

    async def _cut_playout(self) -> None:
        """Barge-in (or a red flag): clear Twilio's buffer, truncate what was not heard."""
        truncation = self.playback.barge_in()
        if truncation is None:
            return
        await self._to_twilio(self.frames.clear())
        if truncation.item_id in self._out_of_band_items:
            return  # a filler is not part of the conversation: nothing to truncate
        assert self.link is not None
        await self.link.truncate(
            truncation.item_id, truncation.content_index, truncation.audio_end_ms
        )

    async def _before_response_done(self) -> None:
        for mark in self.tracker.flush_marks():  # audio whose item never said it was done
            await self._send_mark(mark)

    async def _wait_heard(self) -> None:
        item = self.tracker.current_item_id
        if item is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    await self.playback.wait_drained(item)

    async def _transfer(self, summary: str) -> None:
        self.outcome = CallOutcome.transferred
        await self.actions.transfer(self.call_sid, summary)

    def _busy(self) -> bool:
        return (
            not self._response_idle.is_set()
            or self.tracker.has_unplayed_audio
            or bool(self._tool_tasks)
        )

    async def _hang_up_now(self) -> None:
        await self.actions.hang_up(self.call_sid)

    # Faults ---------------------------------------------------------------------------------------

    async def _configure(self, *, greet: bool, resume: str | None = None) -> None:
        assert self.link is not None
        instructions = self.instructions
        if resume:
            instructions = f"{instructions}\n\n{resume}"
        await self.link.update_session(
            session_config(self.settings, instructions, self.registry.realtime_schemas())
        )
        if greet:
            await self._speak(None)

    async def _reconnect(self) -> None:
        """One reconnect per call: a new session, told what was said so far; else fail over."""
        self._link_ready.clear()
        self._response_idle.set()
        if self._reconnected:
            await self._fail_over("the AI voice service dropped twice")
            raise CallEnded
        self._reconnected = True
        self.turns.forget()  # the old session's transcripts will never come
        logger.warning("realtime connection dropped mid-call; reconnecting once")
        self.recorder.event("error", {"realtime": "connection dropped; reconnecting"})
        await self._close_link()
        if not await self._open_link():
            logger.error("realtime reconnect failed")
            await self._fail_over("the AI voice service dropped and could not be reopened")
            raise CallEnded
        self.tracker = PlaybackTracker(mark_every=MARK_EVERY_BYTES)
        self.playback = PlaybackWaiter(self.tracker)
        self._responses.clear()
        summary = "\n".join(f"{who}: {text}" for who, text in self.recorder.transcript[-20:])
        await self._configure(
            greet=False, resume=self.lines.get("resume_after_reconnect") + "\n" + summary
        )
        self._link_ready.set()
        await self._speak(None)

    async def _fall_back(self, reason: str) -> None:
        """The caller hears an apology and is transferred (or handed to the no-AI path)."""
        await self.actions.fall_back(self.call_sid, reason)

    async def _open_link(self) -> bool:
        """Open a Realtime connection within the connect timeout; False if it cannot be had."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                manager = self.connector.connect()
                connection = await manager.__aenter__()
        except Exception as exc:
            logger.error("realtime connection attempt failed: %s", type(exc).__name__)
            return False
        self._manager = manager
        self.link = RealtimeLink(connection)
        return True

    async def _close_link(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                await manager.__aexit__(None, None, None)


def _b64_len(payload: str) -> int:
    """Decoded length of a base64 string without decoding it."""
    padding = 2 if payload.endswith("==") else 1 if payload.endswith("=") else 0
    return len(payload) * 3 // 4 - padding
