"""What the voice webhooks answer (the TwiML), once ``web/twilio_voice.py`` checked the signature.

``/twilio/voice`` opens the call's record and answers with a media stream (or the keypad path
without OpenAI); ``/after-stream`` carries out what the bridge decided; ``/whisper`` is what
staff hear before a transfer joins; ``/stream-status`` records a stream error.
"""

from __future__ import annotations

import asyncio
import logging

from voice_agent.errors import InvalidPatientData
from voice_agent.patients.language import caller_language
from voice_agent.patients.service import normalize_phone
from voice_agent.services import Services
from voice_agent.store.tables import Patient
from voice_agent.voice.call_records import (
    get_call,
    open_call_record,
    set_call_fields,
    stream_already_ran,
)
from voice_agent.voice.lines import voice_lines
from voice_agent.voice.session import VoiceRuntime, call_alert
from voice_agent.voice.twilio.gather import redirect_twiml
from voice_agent.voice.twilio.twiml import (
    apology_then_gather_twiml,
    hangup_twiml,
    say_twiml,
    stream_twiml,
    transfer_twiml,
)

logger = logging.getLogger(__name__)


async def answer_call(
    runtime: VoiceRuntime, call_sid: str, params: dict[str, str], *, base: str, stream_url: str
) -> str:
    """A new call: its record with a one-use stream token, and the stream (or the keypad path)."""
    services = runtime.services
    if await asyncio.to_thread(stream_already_ran, services.engine, call_sid):
        # Twilio asks once per call; a repeat after the stream opened is a replayed capture.
        logger.warning("voice webhook repeated after the call's stream ran: no new token")
        return hangup_twiml()
    clinic = services.clinic()
    patient = await caller(services, params.get("From", ""))
    language = caller_language(clinic, patient)
    token, claims = runtime.tokens.mint(call_sid, services.clock.now())
    await asyncio.to_thread(
        open_call_record,
        services.engine,
        call_sid,
        params.get("From", "") or "anonymous",
        patient,
        language,
        claims.nonce,
        params.get("Direction", "inbound"),
    )
    if runtime.connector is None:
        return redirect_twiml(f"{base}/twilio/gather/start")
    return stream_twiml(
        stream_url,
        {"token": token},
        status_callback=f"{base}/twilio/stream-status",
        after_url=f"{base}/twilio/after-stream",
    )


async def caller(services: Services, raw_from: str) -> Patient | None:
    """The caller as a patient when caller id gives a valid number (hidden numbers: None)."""
    try:
        phone = normalize_phone(raw_from, services.patients.region)
    except InvalidPatientData:
        return None
    return await services.patients.find_or_create(phone)


async def after_stream_twiml(services: Services, call_sid: str, *, base: str) -> str:
    """The stream closed and the call is still up: do what the bridge decided."""
    call = await asyncio.to_thread(get_call, services.engine, call_sid)
    if call is None:
        return hangup_twiml()
    language = call.language or services.clinic().default_language
    if call.next_action == "hangup":
        return hangup_twiml()
    lines = voice_lines(services.settings.prompts_dir, language)
    if call.next_action == "transfer":
        clinic = services.clinic()
        return transfer_twiml(
            clinic.staff_phone, None, lines.say_language, f"{base}/twilio/whisper", clinic.phone
        )
    if call.mode == "confirmation":
        return redirect_twiml(f"{base}/twilio/confirm/keypad")
    return apology_then_gather_twiml(
        lines.get("apology_handover"), lines.say_language, f"{base}/twilio/gather/start"
    )


async def whisper_twiml(services: Services, parent_sid: str) -> str:
    """Staff picked up a transfer: they hear the one-line summary before the caller joins."""
    call = await asyncio.to_thread(get_call, services.engine, parent_sid)
    language = (call.language if call else None) or services.clinic().default_language
    lines = voice_lines(services.settings.prompts_dir, language)
    summary = (call.transfer_summary if call else None) or "-"
    return say_twiml(
        lines.get("transfer_whisper", summary=summary), lines.say_language, hangup=False
    )


async def stream_failed(services: Services, call_sid: str, error: str) -> None:
    """Twilio reports the stream failed: the record keeps the error, staff get an alert."""
    await asyncio.to_thread(set_call_fields, services.engine, call_sid, error=error[:500])
    await call_alert(services, call_sid)("stream_error", error)
