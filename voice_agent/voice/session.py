"""One AI-voice call, assembled: the per-process runtime, then for each media stream the token
check, the caller, the tools, the instructions and the bridge that runs the call.

Read top to bottom, this is the call path after Twilio opens the stream (``web/twilio_voice.py``
only routes to it): :func:`serve_media_stream` → :func:`authorize` → :func:`run_call` →
:class:`~voice_agent.voice.bridge.CallBridge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from starlette.websockets import WebSocket, WebSocketState

from voice_agent.logging_setup import current_call
from voice_agent.metrics import CALLS_IN_PROGRESS
from voice_agent.safety import default_detector
from voice_agent.services import Services
from voice_agent.store.tables import CallRecord
from voice_agent.store.write_behind import WriteBehind
from voice_agent.tools.catalog import build_registry
from voice_agent.voice.bridge import CallBridge
from voice_agent.voice.call_records import CallRecorder, consume_token, get_call, set_call_fields
from voice_agent.voice.call_setup import call_alert, prepare_call
from voice_agent.voice.openai.connection import RealtimeConnector
from voice_agent.voice.twilio.call_actions import TwilioCallActions
from voice_agent.voice.twilio.protocol import Start
from voice_agent.voice.twilio.stream import read_start
from voice_agent.voice.twilio.tokens import CallTokens, TokenError

logger = logging.getLogger(__name__)

POLICY_VIOLATION = 1008


class VoiceRuntime:
    """Per-process voice state: the Realtime connector, call tokens, the Twilio REST client."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.connector = RealtimeConnector(settings) if settings.openai_enabled else None
        secret = (
            settings.call_token_secret.get_secret_value().encode()
            if settings.call_token_secret
            else secrets.token_bytes(32)
        )
        self.tokens = CallTokens(secret)
        from voice_agent.integrations.twilio_rest import make_twilio_client

        self.twilio_client = make_twilio_client(settings)
        self.calls: set[asyncio.Task[None]] = set()
        self.registry = build_registry(settings.tool_timeout_seconds)
        """The tools this channel offers, built once per process (a build reads every signature)."""
        self.registry.realtime_schemas()  # their JSON schemas built now (~70 ms the first time)
        default_detector()  # the red-flag rules compiled now, not while the first caller waits
        self.writer = WriteBehind(services.engine)
        """Every call's events and question-only interaction rows, one transaction a second."""

    def recorder(self, call_sid: str) -> CallRecorder:
        """A call's recorder, writing through the process's shared queue."""
        return CallRecorder(self.services.engine, call_sid, self.writer, self.services.interactions)

    async def close(self) -> None:
        if self.connector is not None:
            await self.connector.close()
        await self.writer.close()


async def serve_media_stream(runtime: VoiceRuntime, websocket: WebSocket) -> None:
    """A media stream whose upgrade was signed: check its token, then run the call on it."""
    await websocket.accept()
    start = await read_start(websocket)
    if start is None:
        await websocket.close(POLICY_VIOLATION)
        return
    call = await authorize(runtime, start)
    if call is None or runtime.connector is None:
        await websocket.close(POLICY_VIOLATION)
        return
    try:
        await run_call(runtime, runtime.connector, websocket, start, call)
    finally:
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the caller may already be gone
                await websocket.close(1000)


async def authorize(runtime: VoiceRuntime, start: Start) -> CallRecord | None:
    """The call's record if the ``start`` frame's token is this call's and unused (then used)."""
    services = runtime.services
    token = start.custom_parameters.get("token", "")
    now = services.clock.now()
    try:
        claims = runtime.tokens.verify(token, start.call_sid, now)
    except TokenError as exc:
        logger.warning("media stream refused: %s", exc)
        return None
    if not await asyncio.to_thread(
        consume_token, services.engine, start.call_sid, claims.nonce, now
    ):
        logger.warning("media stream refused: token already used")
        return None
    return await asyncio.to_thread(get_call, services.engine, start.call_sid)


async def run_call(
    runtime: VoiceRuntime,
    connector: RealtimeConnector,
    websocket: WebSocket,
    start: Start,
    call: CallRecord,
) -> None:
    """Build what one call needs (tool context, call actions, tools, instructions) and run it."""
    services = runtime.services
    settings = services.settings
    current_call.set(call.call_sid)  # every line of the call, its tasks included, names it
    clinic = services.clinic()
    await asyncio.to_thread(
        set_call_fields, services.engine, call.call_sid, stream_sid=start.stream_sid
    )
    setup = await prepare_call(services, call, runtime.registry)  # the same as on SIP
    base = settings.public_url or ""
    actions = TwilioCallActions(
        services.engine,
        runtime.twilio_client,
        staff_phone=clinic.staff_phone,
        caller_id=clinic.phone,
        whisper_url=f"{base}/twilio/whisper" if base else None,
        say_language=setup.lines.say_language,
    )
    bridge = CallBridge(
        settings=settings,
        twilio=websocket,
        stream_sid=start.stream_sid,
        call_sid=call.call_sid,
        connector=connector,
        registry=setup.registry,
        context=setup.context,
        recorder=runtime.recorder(call.call_sid),
        actions=actions,
        alert=call_alert(services, call.call_sid),
        instructions=setup.instructions,
        lines=setup.lines,
    )
    CALLS_IN_PROGRESS.inc()
    try:
        await bridge.run()
    finally:
        CALLS_IN_PROGRESS.dec()


__all__ = ["VoiceRuntime", "authorize", "call_alert", "run_call", "serve_media_stream"]
