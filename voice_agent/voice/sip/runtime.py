"""Per-process state of the SIP transport, and what happens to one incoming SIP call.

:meth:`SipRuntime.take_call` is the whole path after a verified ``realtime.call.incoming``:
capacity (486 Busy Here when full), who is calling (our token from ``<Dial><Sip>``, or the bare
trunk headers), the call record, the receptionist's session config (the same instructions and
tools as the Media Streams bridge), ``accept``, then the sideband session as a task of its own,
so the webhook is answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

from openai import AsyncOpenAI

from voice_agent.logging_setup import current_call
from voice_agent.metrics import CALLS_IN_PROGRESS
from voice_agent.patients.language import caller_language
from voice_agent.patients.service import InvalidPatientData, normalize_phone
from voice_agent.services import Services
from voice_agent.store.tables import CallOutcome, CallRecord, Patient
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.call_records import (
    CallRecorder,
    consume_token,
    get_call,
    open_call_record,
    set_call_fields,
)
from voice_agent.voice.call_setup import call_alert, prepare_call
from voice_agent.voice.relay_sockets import realtime_websocket_options
from voice_agent.voice.sip.actions import DialedLegActions, TrunkActions
from voice_agent.voice.sip.control import (
    BUSY_HERE,
    DECLINE,
    SipControl,
    SipControlError,
    accept_config,
    transfer_uri,
)
from voice_agent.voice.sip.headers import SipCall
from voice_agent.voice.sip.sideband import SidebandSession, SipCallActions
from voice_agent.voice.twilio.tokens import CallTokens, TokenError

logger = logging.getLogger(__name__)

CONTROL_TIMEOUT = 10.0
"""Seconds a control call (accept, reject, refer, hang-up) may take."""

Taken = Literal["accepted", "busy", "refused", "accept_failed"]


class SipRuntime:
    """The OpenAI client for SIP control and sidebands, and the calls running in this process."""

    def __init__(
        self,
        services: Services,
        tokens: CallTokens,
        registry: ToolRegistry,
        recorders: Callable[[str], CallRecorder],
    ) -> None:
        settings = services.settings
        if settings.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY is required for the openai_sip transport")
        self.services = services
        self.tokens = tokens
        self.registry = registry
        self.recorders = recorders
        """A call's recorder on the process's shared write queue (``VoiceRuntime.recorder``)."""
        self.client = AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            websocket_base_url=settings.openai_websocket_base_url,
            # No silent retries: an accept retried after a timeout may meet a call already
            # accepted. A caller waits on these, so they fail fast and the fallback takes over.
            max_retries=0,
            timeout=CONTROL_TIMEOUT,
        )
        self.control = SipControl(self.client)
        self.sessions: dict[str, asyncio.Task[CallOutcome]] = {}
        self.live: dict[str, SidebandSession] = {}
        self._socket_options = realtime_websocket_options(settings.relay_fast_path)

    # SidebandConnector
    def connect_call(self, call_id: str) -> AbstractAsyncContextManager[Any]:
        options: Any = dict(self._socket_options)
        return self.client.realtime.connect(call_id=call_id, websocket_connection_options=options)

    @property
    def active(self) -> int:
        return sum(1 for task in self.sessions.values() if not task.done())

    async def take_call(self, sip: SipCall) -> Taken:
        """Accept the call and start its sideband, or refuse it (486 when full, 603 forged)."""
        services = self.services
        if self.active >= services.settings.sip_max_calls:
            logger.warning("sip call refused: %d calls running (486)", self.active)
            await self._reject(sip.call_id, BUSY_HERE)
            return "busy"
        record = await self._record_for(sip)
        if record is None:
            await self._reject(sip.call_id, DECLINE)
            return "refused"
        current_call.set(record.call_sid)
        setup = await prepare_call(services, record, self.registry)
        config = accept_config(
            services.settings, setup.instructions, setup.registry.realtime_schemas()
        )
        try:
            await self.control.accept(sip.call_id, config)
        except SipControlError as exc:
            await asyncio.to_thread(
                set_call_fields,
                services.engine,
                record.call_sid,
                outcome=CallOutcome.failed,
                error=str(exc),
                next_action="fallback",
                ended_at=services.clock.now(),
            )
            await call_alert(services, record.call_sid)("call_failure", str(exc))
            return "accept_failed"
        actions: SipCallActions
        if sip.via_twilio_dial:
            actions = DialedLegActions(services.engine, self.control, sip.call_id, record.call_sid)
        else:
            staff = transfer_uri(services.clinic().staff_phone)
            actions = TrunkActions(services.engine, self.control, sip.call_id, staff)
        session = SidebandSession(
            settings=services.settings,
            call_id=sip.call_id,
            record_sid=record.call_sid,
            connector=self,
            actions=actions,
            registry=setup.registry,
            context=setup.context,
            recorder=self.recorders(record.call_sid),
            alert=call_alert(services, record.call_sid),
            lines=setup.lines,
        )
        self.sessions[sip.call_id] = asyncio.create_task(
            self._run(session), name=f"sip-{sip.call_id}"
        )
        return "accepted"

    async def _run(self, session: SidebandSession) -> CallOutcome:
        current_call.set(session.record_sid)
        CALLS_IN_PROGRESS.inc()
        self.live[session.call_id] = session
        try:
            return await session.run()
        finally:
            CALLS_IN_PROGRESS.dec()
            self.sessions.pop(session.call_id, None)
            self.live.pop(session.call_id, None)

    async def _reject(self, call_id: str, status: int) -> None:
        # The call is refused either way: unanswered, the INVITE times out.
        with contextlib.suppress(SipControlError):
            await self.control.reject(call_id, status)

    async def _record_for(self, sip: SipCall) -> CallRecord | None:
        """The call's record: the Twilio call that dialled us (token checked and used), or a new
        record for a call straight from a trunk (its caller not vouched for)."""
        services = self.services
        now = services.clock.now()
        if sip.twilio_call_sid is not None and sip.token is not None:
            try:
                claims = self.tokens.verify(sip.token, sip.twilio_call_sid, now)
            except TokenError as exc:
                logger.warning("sip call refused: %s", exc)
                return None
            if not await asyncio.to_thread(
                consume_token, services.engine, sip.twilio_call_sid, claims.nonce, now
            ):
                logger.warning("sip call refused: token already used")
                return None
            return await asyncio.to_thread(get_call, services.engine, sip.twilio_call_sid)
        patient = await self._trusted_caller(sip.caller)
        language = caller_language(services.clinic(), patient)
        await asyncio.to_thread(
            open_call_record,
            services.engine,
            sip.call_id,
            sip.caller or "anonymous",
            patient,
            language,
            None,
            "inbound",
        )
        return await asyncio.to_thread(get_call, services.engine, sip.call_id)

    async def _trusted_caller(self, number: str | None) -> Patient | None:
        """The trunk's ``From`` as the patient only when the operator vouches for the trunk."""
        services = self.services
        if number is None or not services.settings.sip_trust_trunk_caller_id:
            return None
        try:
            phone = normalize_phone(number, services.patients.region)
        except InvalidPatientData:
            return None
        return await services.patients.find_or_create(phone)

    async def close(self) -> None:
        """The process is stopping: its calls would go on at OpenAI without tools, so each is
        handed over first (the no-AI line or the staff), then its session is ended."""
        live = list(self.live.values())
        await asyncio.gather(
            *(session.hand_over("the app stopped") for session in live), return_exceptions=True
        )
        tasks = list(self.sessions.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()


def sip_runtime(
    services: Services,
    tokens: CallTokens,
    registry: ToolRegistry,
    recorders: Callable[[str], CallRecorder],
) -> SipRuntime | None:
    """The SIP runtime when OpenAI and the webhook secret are configured, else None."""
    settings = services.settings
    if settings.openai_api_key is None or settings.openai_webhook_secret is None:
        return None
    return SipRuntime(services, tokens, registry, recorders)
