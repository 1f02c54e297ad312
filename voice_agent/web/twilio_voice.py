"""Twilio voice: the incoming-call webhook, the media-stream websocket, and what follows a stream.

Every HTTP callback is signature-checked; the websocket's upgrade is refused (HTTP 403) unless
its Twilio signature checks out, and the per-call token in ``start`` is checked before a single
byte of audio reaches OpenAI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response, WebSocket
from starlette.websockets import WebSocketState
from twilio.twiml.voice_response import VoiceResponse

from voice_agent.alerts import StaffTexts, alert_staff, staff_language
from voice_agent.confirmations.prompt import confirmation_prompt_values
from voice_agent.logging_setup import current_call
from voice_agent.metrics import CALLS_IN_PROGRESS
from voice_agent.patients.language import caller_language
from voice_agent.patients.service import InvalidPatientData, normalize_phone
from voice_agent.services import Services
from voice_agent.store.db import transaction
from voice_agent.store.tables import CallRecord, Patient
from voice_agent.tools.catalog import confirmation_registry
from voice_agent.tools.context import ToolContext
from voice_agent.voice.bridge import CallBridge
from voice_agent.voice.call_actions import TwilioCallActions
from voice_agent.voice.call_log import CallRecorder, consume_token, get_call, set_call_fields
from voice_agent.voice.call_tokens import CallTokens, TokenError
from voice_agent.voice.gather import redirect_twiml
from voice_agent.voice.instructions import render_instructions, voice_lines
from voice_agent.voice.realtime import RealtimeConnector
from voice_agent.voice.sip.transport import sip_answer_twiml
from voice_agent.voice.twilio_protocol import Start, parse_twilio_frame
from voice_agent.voice.twiml import hangup_twiml, say_twiml, stream_twiml, transfer_twiml
from voice_agent.web.twilio_security import (
    call_sid_of,
    public_base,
    stream_url,
    verified_form,
    websocket_signature_ok,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio")

POLICY_VIOLATION = 1008
START_TIMEOUT = 10.0
FRAMES_BEFORE_START = 4  # Twilio sends ``connected`` then ``start``; two strays are tolerated
XML = "application/xml"


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

    async def close(self) -> None:
        if self.connector is not None:
            await self.connector.close()


def _runtime(request: Request | WebSocket) -> VoiceRuntime:
    return request.app.state.voice


def _xml(body: str, status: int = 200) -> Response:
    return Response(content=body, media_type=XML, status_code=status)


@router.post("/voice")
async def incoming_call(request: Request) -> Response:
    """Twilio's voice webhook: answer with a media stream, or the no-AI fallback."""
    runtime = _runtime(request)
    services, settings = runtime.services, runtime.services.settings
    params = await verified_form(request, settings)
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA"):
        return _xml(say_twiml("Invalid request.", "en-US"), status=400)
    current_call.set(call_sid)
    if await stream_already_ran(services, call_sid):
        # Twilio asks once per call; a repeat after the stream opened is a replayed capture.
        logger.warning("voice webhook repeated after the call's stream ran: no new token")
        return _xml(hangup_twiml())
    clinic = services.clinic()
    patient = await _caller(services, params.get("From", ""))
    language = caller_language(clinic, patient)
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    now = services.clock.now()
    token, claims = runtime.tokens.mint(call_sid, now)
    await asyncio.to_thread(
        open_call_record,
        services,
        call_sid,
        params.get("From", "") or "anonymous",
        patient,
        language,
        claims.nonce,
        params.get("Direction", "inbound"),
    )
    if runtime.connector is None:
        return _xml(redirect_twiml(f"{base}/twilio/gather/start"))
    sip = sip_answer_twiml(
        settings, clinic, call_sid=call_sid, token=token, base=base, dialled=params.get("To")
    )
    if sip is not None:  # this number is on the openai_sip transport (docs/sip.md)
        return _xml(sip)
    twiml = stream_twiml(
        stream_url(settings, request, "/twilio/media-stream"),
        {"token": token},
        status_callback=f"{base}/twilio/stream-status",
        after_url=f"{base}/twilio/after-stream",
    )
    return _xml(twiml)


@router.post("/after-stream")
async def after_stream(request: Request) -> Response:
    """The stream closed and the call is still up: do what the bridge decided."""
    runtime = _runtime(request)
    services = runtime.services
    params = await verified_form(request, services.settings)
    call_sid = call_sid_of(params)
    current_call.set(call_sid)
    call = await asyncio.to_thread(get_call, services.engine, call_sid)
    if call is None:
        return _xml(hangup_twiml())
    language = call.language or services.clinic().default_language
    base = public_base(services.settings, request.headers, request.url.scheme, request.url.netloc)
    if call.next_action == "hangup":
        return _xml(hangup_twiml())
    if call.next_action == "transfer":
        clinic = services.clinic()
        lines = voice_lines(services.settings.prompts_dir, language)
        return _xml(
            transfer_twiml(
                clinic.staff_phone,
                None,
                lines.say_language,
                f"{base}/twilio/whisper",
                clinic.phone,
            )
        )
    if call.mode == "confirmation":
        return _xml(redirect_twiml(f"{base}/twilio/confirm/keypad"))
    return _xml(_fallback_twiml(services, language, base))


@router.post("/whisper")
async def whisper(request: Request) -> Response:
    """Staff picked up a transfer: they hear the one-line summary before the caller joins."""
    runtime = _runtime(request)
    services = runtime.services
    params = await verified_form(request, services.settings)
    parent = params.get("ParentCallSid") or call_sid_of(params)
    current_call.set(parent)
    call = await asyncio.to_thread(get_call, services.engine, parent)
    language = (call.language if call else None) or services.clinic().default_language
    lines = voice_lines(services.settings.prompts_dir, language)
    summary = (call.transfer_summary if call else None) or "-"
    return _xml(
        say_twiml(lines.get("transfer_whisper", summary=summary), lines.say_language, hangup=False)
    )


@router.post("/stream-status")
async def stream_status(request: Request) -> Response:
    runtime = _runtime(request)
    services = runtime.services
    params = await verified_form(request, services.settings)
    event = params.get("StreamEvent", "")
    call_sid = call_sid_of(params)
    current_call.set(call_sid)
    if event == "stream-error":
        await asyncio.to_thread(
            set_call_fields, services.engine, call_sid, error=params.get("StreamError", "")[:500]
        )
        await _call_alert(services, call_sid)("stream_error", params.get("StreamError", ""))
    return Response(status_code=204)


@router.websocket("/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    runtime = _runtime(websocket)
    services = runtime.services
    settings = services.settings
    if not websocket_signature_ok(websocket, settings):
        # Refused before the upgrade (uvicorn answers HTTP 403): an unsigned socket never
        # gets to send a frame, so it costs no buffer and no parsing.
        logger.warning("media stream refused: bad or missing signature")
        await websocket.close(POLICY_VIOLATION)
        return
    await websocket.accept()
    start = await _read_start(websocket)
    if start is None:
        await websocket.close(POLICY_VIOLATION)
        return
    call = await _authorize(runtime, start)
    if call is None or runtime.connector is None:
        await websocket.close(POLICY_VIOLATION)
        return
    try:
        await _run_bridge(runtime, websocket, start, call)
    finally:
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the caller may already be gone
                await websocket.close(1000)


async def _read_start(websocket: WebSocket) -> Start | None:
    """Skip ``connected`` (and a stray frame or two) until ``start``, which carries the per-call
    token (Twilio takes no query string on the stream URL, so the token cannot be checked
    before the upgrade). Capped: a few frames and a few seconds, then the stream is refused."""
    frames = 0
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while frames < FRAMES_BEFORE_START:
                frame = parse_twilio_frame(await websocket.receive_text())
                frames += 1
                if isinstance(frame, Start):
                    return frame
    except (TimeoutError, Exception):
        logger.warning("media stream refused: no start frame (%d frames before it)", frames)
        return None
    logger.warning("media stream refused: no start frame within %d frames", frames)
    return None


async def _authorize(runtime: VoiceRuntime, start: Start) -> CallRecord | None:
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


async def _run_bridge(
    runtime: VoiceRuntime, websocket: WebSocket, start: Start, call: CallRecord
) -> None:
    services = runtime.services
    settings = services.settings
    current_call.set(call.call_sid)  # every line of the call, its tasks included, names it
    clinic = services.clinic()
    patient = await services.patients.get(call.patient_id) if call.patient_id else None
    language = call.language or clinic.default_language
    lines = voice_lines(settings.prompts_dir, language)
    await asyncio.to_thread(
        set_call_fields, services.engine, call.call_sid, stream_sid=start.stream_sid
    )
    context = ToolContext(
        services=services,
        channel="voice",
        conversation_id=call.call_sid,
        caller_phone=patient.phone if patient else None,
        phone_verified=patient is not None,  # the carrier's caller id, or the number we dialled
        language=language,
        call_sid=call.call_sid,
        appointment_scope=call.appointment_id if call.mode == "confirmation" else None,
    )
    base = settings.public_url or ""
    actions = TwilioCallActions(
        services.engine,
        runtime.twilio_client,
        staff_phone=clinic.staff_phone,
        caller_id=clinic.phone,
        whisper_url=f"{base}/twilio/whisper" if base else None,
        say_language=lines.say_language,
    )
    registry = services.registry
    prompt, extra = "receptionist.md", None
    if call.mode == "confirmation" and call.appointment_id:
        registry = confirmation_registry(registry)
        prompt = "confirmation.md"
        extra = await asyncio.to_thread(
            confirmation_prompt_values, services, call.appointment_id, patient, language
        )
    instructions = render_instructions(
        settings.prompts_dir,
        clinic,
        language,
        now=services.clock.now(),
        patient=patient,
        caller_verified=patient is not None,
        prompt_name=prompt,
        extra=extra,
    )
    bridge = CallBridge(
        settings=settings,
        twilio=websocket,
        stream_sid=start.stream_sid,
        call_sid=call.call_sid,
        connector=runtime.connector,  # type: ignore[arg-type]
        registry=registry,
        context=context,
        recorder=CallRecorder(services.engine, call.call_sid),
        actions=actions,
        alert=_call_alert(services, call.call_sid),
        instructions=instructions,
        lines=lines,
    )
    CALLS_IN_PROGRESS.inc()
    try:
        await bridge.run()
    finally:
        CALLS_IN_PROGRESS.dec()


async def stream_already_ran(services: Services, call_sid: str) -> bool:
    """Whether this call's media stream was opened (token used) or the call has ended: then no
    request, however well signed, may mint the call another stream token."""
    record = await asyncio.to_thread(get_call, services.engine, call_sid)
    if record is None:
        return False
    return record.token_used_at is not None or record.ended_at is not None


async def _caller(services: Services, raw_from: str) -> Patient | None:
    """The caller as a patient when caller id gives a valid number (hidden numbers: None)."""
    try:
        phone = normalize_phone(raw_from, services.patients.region)
    except InvalidPatientData:
        return None
    return await services.patients.find_or_create(phone)


def open_call_record(
    services: Services,
    call_sid: str,
    caller: str,
    patient: Patient | None,
    language: str,
    nonce: str | None,
    direction: str,
    *,
    appointment_id: str | None = None,
) -> None:
    """Create the call's record; a retried webhook gets a fresh token on the same record.

    With ``appointment_id`` the call is a confirmation call about that appointment.
    """
    with transaction(services.engine) as session:
        record = session.get(CallRecord, call_sid)
        if record is None:
            session.add(
                CallRecord(
                    call_sid=call_sid,
                    caller=caller[:32],
                    patient_id=patient.id if patient else None,
                    language=language,
                    token_nonce=nonce,
                    direction="outbound" if direction.startswith("outbound") else "inbound",
                    mode="confirmation" if appointment_id else "reception",
                    appointment_id=appointment_id,
                )
            )
        else:
            record.token_nonce = nonce
            record.token_used_at = None
            session.add(record)


def _fallback_twiml(services: Services, language: str, base: str) -> str:
    """Without the AI voice: a short apology, then the no-AI receptionist (Gather + Say)."""
    lines = voice_lines(services.settings.prompts_dir, language)
    response = VoiceResponse()
    response.say(lines.get("apology_handover"), language=lines.say_language)
    response.redirect(f"{base}/twilio/gather/start", method="POST")
    return str(response)


__all__ = ["VoiceRuntime", "open_call_record", "router"]


def _call_alert(services: Services, call_sid: str) -> Callable[[str, str], Awaitable[None]]:
    """The bridge's alerts as staff texts in the clinic's language, pointing at the call."""
    texts = StaffTexts(services.settings.prompts_dir)

    async def alert(kind: str, detail: str) -> None:
        if kind == "tool_failure":
            return  # the tool registry already alerted, with the caller's name and number
        language = staff_language(services)
        key = kind if texts.has(language, kind) else "call_failure"
        await alert_staff(
            services,
            key,
            dedup_key=call_sid,
            reason=detail[:200],
            where=texts.where(language, call_sid=call_sid, conversation_id=None),
        )

    return alert
