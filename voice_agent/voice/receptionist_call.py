"""What a running call does with the model, whatever carries the audio: the part of the Media
Streams bridge and of the SIP sideband that was the same code written twice.

- the model's responses: one at a time (``_speak``), a failed one asked again once and then the
  call handed over, the tools of a response run and answered, then the model speaks on or the
  call action waits for the words before it to be heard (``_after_tools``, ``_act_when_heard``);
- the call control the tools reach through ``ToolContext.call_control`` (hang up, transfer,
  emergency) and the keypad (0 for staff, other digits told to the model);
- what the caller said: the call's language follows it, and a red flag is acted on at once (the
  call flagged, holds released, staff alerted, the model told and its ordinary answer cut).

A transport supplies how the audio is cut (``_cut_playout``), how "heard" is known
(``_wait_heard``), how the call leaves (``_transfer``, ``_hang_up_now``, ``_fail_over``), and the
events that are its own (``_on_transport_event``). Sends to a dropped connection are skipped here:
the transport's reader reconnects, and the model asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from openai.types.realtime.realtime_response import RealtimeResponse
from websockets.exceptions import ConnectionClosed

from voice_agent.safety import RedFlag
from voice_agent.safety.guard import SafetyGuard
from voice_agent.store.tables import CallOutcome, InteractionKind
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.call_limits import CallLimits, PendingAction, ResponseState
from voice_agent.voice.call_records import CallRecorder, set_call_fields
from voice_agent.voice.call_tasks import CallEnded
from voice_agent.voice.lines import voice_lines
from voice_agent.voice.openai.connection import RealtimeLink
from voice_agent.voice.openai.events import (
    AudioCommitted,
    AudioTranscriptDone,
    FunctionCallDone,
    RealtimeError,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    TranscriptionCompleted,
    TranscriptionFailed,
)
from voice_agent.voice.openai.turns import CallerTurns, Heard, run_tool_call

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
DRAIN_TIMEOUT = 20.0
"""The words before a call action being heard, at most (then the action happens anyway)."""
MAX_FAILED_RESPONSES = 2
"""Responses that fail in a row (``response.done`` status ``failed``: a server error inside the
API) before the call is handed over as if the connection had dropped for good."""
SAFETY_SETTLE = 0.3
"""After a red flag, the server's own response to the caller's words (server VAD creates one
right after the transcript) is let start this long, then cut if it is not calling a tool."""


class ReceptionistCall(CallLimits):
    """Mixin for a running call (the bridge, the SIP sideband); see the module docstring."""

    record_sid: str
    """The call's record (its call SID on Twilio; the SIP call's record)."""
    registry: ToolRegistry
    context: ToolContext
    recorder: CallRecorder
    alert: Callable[[str, str], Awaitable[None]]
    link: RealtimeLink | None
    flagged: bool
    error: str | None

    def _init_receptionist(self) -> None:
        """The state shared by both transports (called from the transport's ``__init__``)."""
        self._init_tasks(self.settings.tool_timeout_seconds)
        self.outcome = CallOutcome.completed
        self.flagged = False
        self.error = None
        self._responses: dict[str, ResponseState] = {}
        self._response_idle = asyncio.Event()  # set while no model response is active
        self._response_idle.set()
        self._pending: PendingAction | None = None
        self._act_after_next_response = False
        self._failed_responses = 0
        self._ending = False
        self._booked = False
        self._started = self.clock()
        self._last_activity = self._started
        self._idle_prompted = False
        self._ended = asyncio.Event()
        self._safety = SafetyGuard(self.context.services)
        self.turns = CallerTurns(self.context, self.recorder)
        self.context.call_control = self
        self.context.recorder = self.recorder.tool
        self.context.notes = self.recorder.note

    # What the transport supplies -----------------------------------------------------------------

    async def _on_transport_event(self, event: ServerEvent) -> None:
        """An event only this transport acts on (speech start, audio done, playout, keypad)."""

    async def _before_response_done(self) -> None:
        """Anything to send before a finished response is acted on (the bridge's last marks)."""

    @abstractmethod
    async def _cut_playout(self) -> None:
        """Stop what the caller is hearing of the model's current answer."""

    @abstractmethod
    async def _wait_heard(self) -> None:
        """Return once the caller heard everything said so far (bounded by the caller)."""

    @abstractmethod
    async def _transfer(self, summary: str) -> None:
        """Put the caller through to the staff (the outcome is the transport's to set)."""

    @abstractmethod
    async def _fall_back(self, reason: str) -> None:
        """Hand the caller over without the AI receptionist (transfer or the no-AI line)."""

    # Events -------------------------------------------------------------------------------------

    async def _on_model_event(self, event: ServerEvent) -> None:
        match event:
            case ResponseCreated(response=response):
                self._response_idle.clear()
                self._responses[response.id or ""] = ResponseState(
                    out_of_band=bool((response.metadata or {}).get("purpose"))
                )
            case FunctionCallDone():
                self._on_function_call(event)
            case ResponseDone(response=response):
                await self._on_response_done(response)
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
            case RealtimeError(error=error):
                logger.warning("realtime error %s/%s", error.type, error.code)
                self.recorder.event("error", {"realtime": error.model_dump(exclude_unset=True)})
            case _:
                await self._on_transport_event(event)

    # Responses and tools ------------------------------------------------------------------------

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
        if self.link is not None and not self._ending:
            with contextlib.suppress(ConnectionClosed):
                await self.link.function_output(call_id, run.output)

    async def _on_response_done(self, response: RealtimeResponse) -> None:
        state = self._responses.pop(response.id or "", ResponseState())
        await self._before_response_done()
        self._response_idle.set()
        self._touch(caller=False)  # the model finished; only the caller answers an idle prompt
        if response.status == "failed" and not state.function_calls:
            await self._on_response_failed(response, state)
            return
        if response.status == "completed":
            self._failed_responses = 0
        if state.function_calls:
            tasks = [self._tool_tasks[c] for c in state.function_calls if c in self._tool_tasks]
            self._spawn(self._after_tools(tasks, had_audio=state.had_audio))
        elif self._act_after_next_response:
            self._act_after_next_response = False
            self._spawn(self._act_when_heard())

    async def _on_response_failed(self, response: RealtimeResponse, state: ResponseState) -> None:
        """The API failed to answer (a server error inside the response): the caller would hear
        silence. Ask once more; a second failure in a row hands the call over."""
        details = response.status_details
        error = details.error if details is not None else None
        found = error.model_dump(exclude_unset=True) if error is not None else {}
        logger.warning("realtime response failed: %s/%s", found.get("type"), found.get("code"))
        self.recorder.event("error", {"realtime_response_failed": found})
        if state.out_of_band:
            return  # a filler line: the real answer is still to come
        self._failed_responses += 1
        if self._failed_responses >= MAX_FAILED_RESPONSES:
            await self._fail_over("the AI voice service failed to answer twice in a row")
            raise CallEnded
        self._spawn(self._speak(None))

    async def _after_tools(self, tasks: list[asyncio.Task[None]], *, had_audio: bool) -> None:
        """Tools of one response finished: let the model speak on, or carry out a call action."""
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
        """Ask for a response once none is active (one response at a time, as the API requires)."""
        while not self._response_idle.is_set():  # several may wait; one response at a time
            await self._response_idle.wait()
        if self.link is None or self._ending:
            return
        self._response_idle.clear()
        try:
            if tools:
                await self.link.create_response(instructions)
            else:
                # Out of band: spoken now, kept out of the conversation, so it cannot collide
                # with a function call still waiting for its output.
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
        """Carry out the pending action once the caller heard everything said before it."""
        action = self._pending
        if action is None:
            return
        await self._wait_heard()
        self._ending = True
        if action.kind == "transfer":
            await self._transfer(action.summary)
        else:
            if action.kind == "hangup" and self.outcome not in (
                CallOutcome.emergency,
                CallOutcome.timed_out,
            ):
                self.outcome = CallOutcome.booked if self._booked else CallOutcome.completed
            await self._hang_up_now()
        raise CallEnded

    async def _on_dtmf(self, digit: str) -> None:
        self._touch()
        self.recorder.event("dtmf", digit)
        if digit == "0":
            summary = "caller pressed 0 for staff"
            self._pending = PendingAction("transfer", summary)
            self._act_after_next_response = True
            self._spawn(self._speak(self.lines.get("dtmf_staff"), tools=False))
            # As the transfer tool does: a hand-over item in the to-do, and the staff told.
            await self._note_for_staff(InteractionKind.transfer, {"summary": summary})
            self._spawn(
                self.context.alert_staff("transfer", self.context.known_patient, summary=summary)
            )
            return
        if self.link is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.link.user_text(f"[DTMF {digit}]")
            self._spawn(self._speak(None))

    async def _fail_over(self, reason: str) -> None:
        """No working session: the call is recorded as failed, the staff alerted, a to-do item
        opened (the caller may need calling back), and the caller handed over."""
        self.outcome = CallOutcome.failed
        self.error = reason
        self._ending = True
        self.recorder.event("error", {"failover": reason})
        await self.alert("call_failure", f"call {self.record_sid}: {reason}")
        await self._note_for_staff(InteractionKind.failure, {"message": reason})
        await self._fall_back(reason)

    async def _note_for_staff(self, kind: InteractionKind, details: dict[str, Any]) -> None:
        """An interaction row the staff's to-do takes up (a hand-over, a failed call), for a
        call whose path went through no tool; never lets a database fault stop the hand-over."""
        context = self.context
        patient = context.known_patient
        try:
            await context.services.interactions.record(
                kind,
                channel="voice",
                patient_id=patient.id if patient is not None else None,
                details={**details, "call_sid": self.record_sid},
                actor=context.interaction_actor(),
            )
        except Exception as exc:
            logger.error("could not record the call's %s for the staff: %s", kind, exc)

    def _caller_left(self) -> None:
        if not self._ending and not self.turns.red_flags:  # told to hang up and call the number
            self.outcome = CallOutcome.booked if self._booked else CallOutcome.caller_hung_up

    # Language and safety ------------------------------------------------------------------------

    def _on_heard(self, heard: Heard) -> None:
        """The caller's words moved the call to another language, or raised a red flag.

        Language: tools, fixed lines and the record follow (the model hears the caller and
        answers in their language by itself). Red flag: the call is flagged at once, then told.
        """
        if heard.language is not None:
            self.lines = voice_lines(self.settings.prompts_dir, heard.language)
            engine = self.recorder.engine
            self._spawn(
                asyncio.to_thread(set_call_fields, engine, self.record_sid, language=heard.language)
            )
        if heard.red_flag is not None:
            self.flagged = True
            self.outcome = CallOutcome.emergency
            self._spawn_essential(self._raise_red_flag(heard.red_flag))
            self._spawn(self._tell_red_flag(heard.red_flag))

    async def _raise_red_flag(self, flag: RedFlag) -> None:
        """The record flagged, the caller's holds released, the staff alarmed: finished even if
        the caller hangs up at once (the call's end waits for it)."""
        services = self.context.services
        await asyncio.to_thread(
            set_call_fields,
            self.recorder.engine,
            self.record_sid,
            flagged=True,
            outcome=CallOutcome.emergency,
        )
        await services.booking.release_holds(self.context.conversation_id)
        await self._safety.raise_alarm(
            flag, channel="voice", phone=self.context.caller_phone, where=("call", self.record_sid)
        )

    async def _tell_red_flag(self, flag: RedFlag) -> None:
        """The model told (a system item in the call's language) and its ordinary answer cut."""
        clinic = self.context.services.clinic()
        instruction = self._safety.texts.voice_instruction(clinic, flag, self.context.language)
        if self.link is not None and not self._ending:
            with contextlib.suppress(ConnectionClosed):
                await self.link.system_text(instruction)
            self._spawn(self._say_safety(instruction))

    async def _say_safety(self, instruction: str) -> None:
        """Cut the model's ordinary answer (unless it is calling a tool), then say ours."""
        await asyncio.sleep(SAFETY_SETTLE)
        active = [r for r in self._responses.values() if not r.out_of_band]
        if active and not any(r.function_calls for r in active) and self.link is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.link.cancel_response()
                await self._cut_playout()
        await self._speak(instruction)


__all__ = [
    "CONNECT_TIMEOUT",
    "DRAIN_TIMEOUT",
    "MAX_FAILED_RESPONSES",
    "SAFETY_SETTLE",
    "ReceptionistCall",
]
