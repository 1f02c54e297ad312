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

from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from voice_agent.settings import Settings
from voice_agent.store.tables import CallOutcome
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.call_records import CallRecorder
from voice_agent.voice.call_tasks import CallEnded
from voice_agent.voice.lines import VoiceLines
from voice_agent.voice.openai.connection import RealtimeLink
from voice_agent.voice.openai.events import (
    DtmfReceived,
    PlayoutCleared,
    PlayoutStarted,
    PlayoutStopped,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
)
from voice_agent.voice.receptionist_call import CONNECT_TIMEOUT, DRAIN_TIMEOUT, ReceptionistCall

logger = logging.getLogger(__name__)

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


class SidebandSession(ReceptionistCall):
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
        self.reconnects = 0
        self._manager: Any = None
        self._playing: set[str] = set()  # responses whose audio OpenAI is still playing
        self._played = asyncio.Event()
        self._played.set()
        self._init_receptionist()

    # Entry point --------------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        """Run the call to its end; never raises for call faults."""
        try:
            if await self._open() != "open":
                await self._fail_over("the sideband to the SIP call could not be opened")
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
                    await self._on_model_event(event)
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
        await self._fail_over("the sideband of the SIP call dropped and could not be reopened")
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

    async def _on_transport_event(self, event: ServerEvent) -> None:
        match event:
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
            case SpeechStarted() | SpeechStopped():
                self._touch()  # OpenAI handles barge-in itself: it knows what was played
            case DtmfReceived(event=digit):
                await self._on_dtmf(digit)

    # What ReceptionistCall and CallLimits ask of this transport -----------------------------------

    async def _cut_playout(self) -> None:
        """Stop what the caller hears: OpenAI drops the rest of the answer's audio."""
        if self._playing and self.link is not None:
            await self.link.clear_output_audio()

    async def _wait_heard(self) -> None:
        """OpenAI says when it has played out everything (``output_audio_buffer.stopped``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await self._played.wait()

    async def _transfer(self, summary: str) -> None:
        self.outcome = CallOutcome.transferred
        try:
            await self.actions.transfer(summary)
        except Exception as exc:
            self.outcome = CallOutcome.failed
            self.error = f"transfer failed: {type(exc).__name__}"
            self.recorder.event("error", {"transfer": type(exc).__name__})
            await self.alert("call_failure", f"call {self.record_sid}: {self.error}")
            await self._hang_up_now()

    async def _hang_up_now(self) -> None:
        try:
            await self.actions.hang_up()
        except Exception as exc:  # the call may already be over
            logger.warning("sip hang-up failed: %s", type(exc).__name__)

    def _busy(self) -> bool:
        return not self._response_idle.is_set() or bool(self._playing) or bool(self._tool_tasks)

    # Faults ---------------------------------------------------------------------------------------

    async def hand_over(self, reason: str) -> None:
        """End the receptionist's part now (the process stops): the caller is handed over."""
        if not self._ending:
            await self._fail_over(reason)

    async def _fall_back(self, reason: str) -> None:
        try:
            await self.actions.fall_back(reason)
        except Exception as exc:
            logger.warning("sip fallback failed: %s", type(exc).__name__)
