"""One SIP call's sideband: this app joined to the OpenAI session that carries the call's audio.

The audio goes carrier ↔ OpenAI; the sideband websocket (``client.realtime.connect(call_id=…)``)
carries only control events, so per call this app handles a few events a second instead of the
bridge's 175 messages. What the caller gets is the bridge's receptionist: the same tools and
``ToolContext`` (booking tools refused after a red flag), the same call record (transcript turns,
tools, errors, outcome), the same idle and maximum-length limits, the same fixed lines, the same
red-flag handling on every caller transcript, and the same call control: ``end_call`` hangs up
once the goodbye has been played out (``output_audio_buffer.stopped``), ``transfer_to_staff``
sends a SIP REFER to the clinic's staff number.

Differences from Media Streams (docs/sip.md): OpenAI handles barge-in itself (it knows what was
played), so there are no marks and no truncation; cutting the model's answer for a red flag is
``response.cancel`` + ``output_audio_buffer.clear``. DTMF arrives as
``input_audio_buffer.dtmf_event_received``. A transfer is a blind REFER (no whispered summary:
the summary is in the call record and the staff alert). A dropped sideband is reconnected to the
same ``call_id`` (the session and its conversation live on at OpenAI, so nothing is resent); a
close with code 1000 means the call itself ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from openai.types.realtime.realtime_response import RealtimeResponse
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from voice_agent.safety import RedFlag
from voice_agent.safety.guard import SafetyGuard
from voice_agent.settings import Settings
from voice_agent.store.tables import CallOutcome
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.call_limits import CallLimits, PendingAction, ResponseState
from voice_agent.voice.call_records import CallRecorder, set_call_fields
from voice_agent.voice.call_tasks import CallEnded
from voice_agent.voice.lines import VoiceLines, voice_lines
from voice_agent.voice.openai.connection import RealtimeLink
from voice_agent.voice.openai.events import (
    AudioCommitted,
    AudioTranscriptDone,
    DtmfReceived,
    FunctionCallDone,
    PlayoutCleared,
    PlayoutStarted,
    PlayoutStopped,
    RealtimeError,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
    TranscriptionCompleted,
    TranscriptionFailed,
)
from voice_agent.voice.openai.turns import CallerTurns, Heard, run_tool_call

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
DRAIN_TIMEOUT = 20.0  # the goodbye being played out before the hang-up, at most
MAX_FAILED_RESPONSES = 2
SAFETY_SETTLE = 0.3
NOT_FOUND = 404  # the sideband of a call that no longer exists
RECONNECT_BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)


class SidebandConnector(Protocol):
    """Opens the sideband of one call (``client.realtime.connect(call_id=…)``)."""

    def connect_call(self, call_id: str) -> AbstractAsyncContextManager[Any]: ...


class SipCallActions(Protocol):
    """How the call leaves the session (:mod:`voice_agent.voice.sip.actions`): the decision is
    stored on the call record, then carried out by REST (hang-up, SIP REFER)."""

    async def hang_up(self) -> None: ...

    async def transfer(self, summary: str) -> None: ...

    async def fall_back(self, reason: str) -> None: ...


class SidebandSession(CallLimits):
    def __init__(
        self,
        *,
        settings: Settings,
        call_id: str,
        record_sid: str,
        connector: SidebandConnector,
        actions: SipCallActions,
        registry: ToolRegistry,
        context: ToolContext,
        recorder: CallRecorder,
        alert: Callable[[str, str], Awaitable[None]],
        lines: VoiceLines,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.call_id = call_id
        self.record_sid = record_sid
        self.connector = connector
        self.actions = actions
        self.registry = registry
        self.context = context
        self.recorder = recorder
        self.alert = alert
        self.lines = lines
        self.clock = clock
        self.link: RealtimeLink | None = None
        self.outcome = CallOutcome.completed
        self.flagged = False
        self.error: str | None = None
        self.reconnects = 0
        self._manager: Any = None
        self._responses: dict[str, ResponseState] = {}
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._playing: set[str] = set()  # responses whose audio OpenAI is still playing
        self._played = asyncio.Event()
        self._played.set()
        self._init_tasks(self.settings.tool_timeout_seconds)
        self._pending: PendingAction | None = None
        self._act_after_next_response = False
        self._failed_responses = 0
        self._ending = False
        self._booked = False
        self._started = clock()
        self._last_activity = clock()
        self._idle_prompted = False
        self._ended = asyncio.Event()
        self._safety = SafetyGuard(context.services)
        self.turns = CallerTurns(context, recorder)
        context.call_control = self
        context.recorder = recorder.tool
        context.notes = recorder.note

    # Entry point --------------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        """Run the call to its end; never raises for call faults."""
        self.recorder.start()
        try:
            if await self._open() != "open":
                await self._give_up("the sideband to the SIP call could not be opened")
                return self.outcome
            await self._speak(None)  # the greeting: on SIP the model waits to be asked
            await self._run_tasks()
        finally:
            await self._close()
            await self._settle_tools()
            await self.context.services.booking.release_holds(self.context.conversation_id)
            await self.recorder.finish(self.outcome, error=self.error, flagged=self.flagged)
        return self.outcome

    async def _run_tasks(self) -> None:
        tasks = [
            asyncio.create_task(self._reader(), name="sideband-reader"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._ended.wait(), name="ended"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not isinstance(exc, CallEnded):
                    logger.error("sip call task %s failed: %s", task.get_name(), type(exc).__name__)
                    self.error = f"{task.get_name()}: {type(exc).__name__}"
                    self.outcome = CallOutcome.failed
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # The sideband -------------------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            assert self.link is not None
            try:
                async for event in self.link.events():
                    await self._on_event(event)
                closed_ok = True  # the iterator ended without an error: a clean close
            except ConnectionClosedOK:
                closed_ok = True
            except ConnectionClosed:
                closed_ok = False
            if self._ending:
                raise CallEnded
            if closed_ok:  # OpenAI closes the sideband when the call ends: the caller hung up
                self._caller_left()
                raise CallEnded
            await self._reconnect()

    async def _reconnect(self) -> None:
        """The same call, the same session: reopen the sideband, with a bounded backoff.

        What OpenAI sent in the gap is lost: the responses and the playout it knew of are
        forgotten (the idle limit covers a conversation that stalled in the gap)."""
        self._response_idle.set()
        self._responses.clear()
        self._playing.clear()
        self._played.set()
        self.turns.forget()
        await self._close()
        for attempt in range(self.settings.sip_sideband_retries):
            self.reconnects += 1
            logger.warning("sip sideband dropped; reconnect attempt %d", attempt + 1)
            self.recorder.event("error", {"sideband": f"dropped; reconnect {attempt + 1}"})
            await asyncio.sleep(RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)])
            opened = await self._open()
            if opened == "open":
                return
            if opened == "gone":  # the call ended during the gap: the caller hung up
                self._caller_left()
                raise CallEnded
        await self._give_up("the sideband of the SIP call dropped and could not be reopened")
        raise CallEnded

    async def _open(self) -> Literal["open", "gone", "failed"]:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                manager = self.connector.connect_call(self.call_id)
                connection = await manager.__aenter__()
        except InvalidStatus as exc:
            status = exc.response.status_code
            logger.warning("sip sideband refused: HTTP %d", status)
            return "gone" if status == NOT_FOUND else "failed"
        except Exception as exc:
            logger.warning("sip sideband connection failed: %s", type(exc).__name__)
            return "failed"
        self._manager = manager
        self.link = RealtimeLink(connection)
        return "open"

    async def _close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                await manager.__aexit__(None, None, None)

    async def _on_event(self, event: ServerEvent) -> None:
        match event:
            case ResponseCreated(response=response):
                self._response_idle.clear()
                self._responses[response.id or ""] = ResponseState(
                    out_of_band=bool((response.metadata or {}).get("purpose"))
                )
            case PlayoutStarted(response_id=response_id):
                self._playing.add(response_id)
                self._played.clear()
                state = self._responses.get(response_id)
                if state is not None:
                    state.had_audio = True
            case PlayoutStopped(response_id=response_id) | PlayoutCleared(response_id=response_id):
                self._playing.discard(response_id)
                if not self._playing:
                    self._played.set()
                self._touch(caller=False)
            case FunctionCallDone():
                self._on_function_call(event)
            case ResponseDone(response=response):
                await self._on_response_done(response)
            case SpeechStarted() | SpeechStopped():
                self._touch()
            case AudioCommitted(item_id=item_id):
                self.turns.committed(item_id)
            case TranscriptionCompleted(item_id=item_id, transcript=transcript):
                self._touch()
                self._on_heard(self.turns.heard(transcript))
                self.turns.arrived(item_id)
            case TranscriptionFailed(item_id=item_id):
                self.turns.arrived(item_id)
            case AudioTranscriptDone(transcript=transcript):
                self.recorder.event("receptionist", transcript)
            case DtmfReceived(event=digit):
                await self._on_dtmf(digit)
            case RealtimeError(error=error):
                logger.warning("realtime error %s/%s", error.type, error.code)
                self.recorder.event("error", {"realtime": error.model_dump(exclude_none=True)})

    # Tools --------------------------------------------------------------------------------------

    def _on_function_call(self, event: FunctionCallDone) -> None:
        call_id, name = event.call_id, event.name
        state = self._responses.get(event.response_id)
        if state is not None:
            state.function_calls.append(call_id)
        self._touch(caller=False)
        self._tool_tasks[call_id] = asyncio.create_task(
            self._run_tool(call_id, name, event.arguments or "{}"), name=f"tool-{name}"
        )

    async def _run_tool(self, call_id: str, name: str, arguments: str) -> None:
        await self.turns.settled()
        run = await run_tool_call(
            self.registry,
            self.context,
            self.recorder,
            name,
            arguments,
            red_flagged=bool(self.turns.red_flags),
        )
        self._booked = self._booked or run.booked
        if run.failed:
            await self.alert("tool_failure", f"call {self.record_sid}: tool {name} failed")
        await self._output(call_id, run.output)

    async def _output(self, call_id: str, output: str) -> None:
        if self.link is None or self._ending:
            return
        with contextlib.suppress(ConnectionClosed):  # the reader reconnects; the model asks again
            await self.link.function_output(call_id, output)

    async def _on_response_done(self, response: RealtimeResponse) -> None:
        state = self._responses.pop(response.id or "", ResponseState())
        self._response_idle.set()
        self._touch(caller=False)
        status = response.status
        if status == "failed" and not state.function_calls:
            await self._on_response_failed(response, state)
            return
        if status == "completed":
            self._failed_responses = 0
        if state.function_calls:
            tasks = [self._tool_tasks[c] for c in state.function_calls if c in self._tool_tasks]
            self._spawn(self._after_tools(tasks, had_audio=state.had_audio))
        elif self._act_after_next_response:
            self._act_after_next_response = False
            self._spawn(self._act_when_heard())

    async def _on_response_failed(self, response: RealtimeResponse, state: ResponseState) -> None:
        details = response.status_details
        error = details.error if details is not None else None
        found = error.model_dump(exclude_none=True) if error is not None else {}
        logger.warning("realtime response failed: %s/%s", found.get("type"), found.get("code"))
        self.recorder.event("error", {"realtime_response_failed": found})
        if state.out_of_band:
            return
        self._failed_responses += 1
        if self._failed_responses >= MAX_FAILED_RESPONSES:
            await self._give_up("the AI voice service failed to answer twice in a row")
            raise CallEnded
        self._spawn(self._speak(None))

    async def _after_tools(self, tasks: list[asyncio.Task[None]], *, had_audio: bool) -> None:
        _, pending = await asyncio.wait(tasks, timeout=self.settings.tool_filler_after_seconds)
        if pending:
            await self._speak(self.lines.get("filler"), tools=False)
            await asyncio.wait(pending)
        for call_id in [c for c, t in self._tool_tasks.items() if t.done()]:
            del self._tool_tasks[call_id]
        if self._pending is not None and self._pending.kind == "hangup" and had_audio:
            await self._act_when_heard()
            return
        if self._pending is not None:
            self._act_after_next_response = True
        await self._speak(None)

    async def _speak(self, instructions: str | None, *, tools: bool = True) -> None:
        """Ask for a response once none is active (one at a time, as the API requires)."""
        while not self._response_idle.is_set():
            await self._response_idle.wait()
        if self.link is None or self._ending:
            return
        self._response_idle.clear()
        try:
            if tools:
                await self.link.create_response(instructions)
            else:  # out of band: cannot collide with a function call waiting for its output
                await self.link.create_out_of_band_response(instructions or "")
        except ConnectionClosed:
            self._response_idle.set()  # the reader reconnects

    # Call control (the tools call these through ToolContext.call_control) ------------------------

    async def end_call(self, reason: str) -> None:
        self._pending = PendingAction("hangup", reason)

    async def transfer_to_staff(self, summary: str) -> None:
        self._pending = PendingAction("transfer", summary)

    async def flag_emergency(self, summary: str) -> None:
        self.flagged = True
        self.outcome = CallOutcome.emergency
        self._pending = PendingAction("emergency", summary)

    async def _act_when_heard(self) -> None:
        """Carry out the pending action once OpenAI has played out everything said before it."""
        action = self._pending
        if action is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await self._played.wait()
        self._ending = True
        if action.kind == "transfer":
            await self._transfer(action.summary)
        else:
            if action.kind == "hangup" and self.outcome not in (
                CallOutcome.emergency,
                CallOutcome.timed_out,
            ):
                self.outcome = CallOutcome.booked if self._booked else CallOutcome.completed
            await self._hang_up()
        raise CallEnded

    async def _transfer(self, summary: str) -> None:
        self.outcome = CallOutcome.transferred
        try:
            await self.actions.transfer(summary)
        except Exception as exc:
            self.outcome = CallOutcome.failed
            self.error = f"transfer failed: {type(exc).__name__}"
            self.recorder.event("error", {"transfer": type(exc).__name__})
            await self.alert("call_failure", f"call {self.record_sid}: {self.error}")
            await self._hang_up()

    async def _hang_up(self) -> None:
        try:
            await self.actions.hang_up()
        except Exception as exc:  # the call may already be over
            logger.warning("sip hang-up failed: %s", type(exc).__name__)

    async def _on_dtmf(self, digit: str) -> None:
        self._touch()
        self.recorder.event("dtmf", digit)
        if digit == "0":
            self._pending = PendingAction("transfer", "caller pressed 0 for staff")
            self._act_after_next_response = True
            self._spawn(self._speak(self.lines.get("dtmf_staff"), tools=False))
            return
        if self.link is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.link.user_text(f"[DTMF {digit}]")
            self._spawn(self._speak(None))

    def _caller_left(self) -> None:
        if not self._ending and not self.turns.red_flags:
            self.outcome = CallOutcome.booked if self._booked else CallOutcome.caller_hung_up

    # Language and safety ------------------------------------------------------------------------

    def _on_heard(self, heard: Heard) -> None:
        """The caller's words moved the call to another language, or raised a red flag."""
        if heard.language is not None:
            self.lines = voice_lines(self.settings.prompts_dir, heard.language)
            engine = self.recorder.engine
            self._spawn(
                asyncio.to_thread(set_call_fields, engine, self.record_sid, language=heard.language)
            )
        if heard.red_flag is not None:
            self.flagged = True
            self.outcome = CallOutcome.emergency
            self._spawn(self._on_red_flag(heard.red_flag))

    async def _on_red_flag(self, flag: RedFlag) -> None:
        services = self.context.services
        clinic = services.clinic()
        instruction = self._safety.texts.voice_instruction(clinic, flag, self.context.language)
        self._spawn(
            asyncio.to_thread(
                set_call_fields,
                self.recorder.engine,
                self.record_sid,
                flagged=True,
                outcome=CallOutcome.emergency,
            )
        )
        if self.link is not None and not self._ending:
            with contextlib.suppress(ConnectionClosed):
                await self.link.system_text(instruction)
            self._spawn(self._say_safety(instruction))
        await services.booking.release_holds(self.context.conversation_id)
        await self._safety.raise_alarm(
            flag, channel="voice", phone=self.context.caller_phone, where=("call", self.record_sid)
        )

    async def _say_safety(self, instruction: str) -> None:
        """Cut the model's ordinary answer (unless it is calling a tool), then say ours."""
        await asyncio.sleep(SAFETY_SETTLE)
        active = [r for r in self._responses.values() if not r.out_of_band]
        if active and not any(r.function_calls for r in active) and self.link is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.link.cancel_response()
                if self._playing:
                    await self.link.clear_output_audio()
        await self._speak(instruction)

    # Limits ---------------------------------------------------------------------------------------

    def _busy(self) -> bool:
        return not self._response_idle.is_set() or bool(self._playing) or bool(self._tool_tasks)

    async def _hang_up_now(self) -> None:
        await self._hang_up()

    # Faults ---------------------------------------------------------------------------------------

    async def hand_over(self, reason: str) -> None:
        """End the receptionist's part now (the process stops): the caller is handed over."""
        if not self._ending:
            await self._give_up(reason)

    async def _give_up(self, reason: str) -> None:
        """Without a working session the call has no receptionist: hand the caller over."""
        self.outcome = CallOutcome.failed
        self.error = reason
        self._ending = True
        self.recorder.event("error", {"failover": reason})
        await self.alert("call_failure", f"call {self.record_sid}: {reason}")
        try:
            await self.actions.fall_back(reason)
        except Exception as exc:
            logger.warning("sip fallback failed: %s", type(exc).__name__)
