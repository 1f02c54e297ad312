"""Twilio routes of the no-AI phone receptionist: ``/twilio/gather/start`` and ``/turn``.

The voice webhook hands a call over (OpenAI not configured, or the Realtime session cannot be
opened) by answering ``voice.twilio.gather.redirect_twiml(f"{base}/twilio/gather/start")``;
Twilio then posts the call's parameters here, and every later turn comes back to ``/turn``.

Each turn's action URL carries its number (``/turn?turn=3``; Twilio signs the query too), and a
turn is processed once per call: Twilio's retry or a replayed capture of turn 3 gets the TwiML
turn 3 answered, and books, moves or cancels nothing again.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import Engine

from voice_agent.conversation.engine import ConversationService
from voice_agent.logging_setup import current_call
from voice_agent.patients.service import InvalidPatientData, normalize_phone
from voice_agent.store.tables import CallOutcome
from voice_agent.voice.call_records import set_call_fields
from voice_agent.voice.lines import call_disclosure
from voice_agent.voice.twilio.gather import (
    KEYPAD_STAGES,
    MAX_SILENCES,
    digits_to_text,
    gather_twiml,
    goodbye_twiml,
    transfer_twiml,
)
from voice_agent.web.chat import get_conversations
from voice_agent.web.replay import once, turn_number
from voice_agent.web.twilio_security import public_base, verified_form

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/gather")
XML = "application/xml"


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


async def _call(request: Request) -> tuple[dict[str, str], str | None, str]:
    settings = request.app.state.settings
    params = await verified_form(request, settings)
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA"):
        raise HTTPException(400, "not a call")
    current_call.set(call_sid)
    services = request.app.state.services
    try:
        phone = normalize_phone(params.get("From", ""), services.clinic().country)
    except InvalidPatientData:
        phone = None  # a withheld number: the receptionist asks for it when it needs it
    base = public_base(settings, request.headers, request.url.scheme, request.url.netloc)
    return params, phone, base


@router.post("/start")
async def start(request: Request) -> Response:
    """Greet the caller in their language (known patient) or the clinic's, and listen."""
    _, phone, base = await _call(request)
    conversations = get_conversations(request)
    services = conversations.services
    clinic = services.clinic()
    language = clinic.default_language
    if phone:
        patient = await services.patients.find_by_phone(phone)
        if patient is not None and patient.language:
            language = patient.language
    disclosure = call_disclosure(services.settings.prompts_dir, clinic, language)
    text = conversations.replies.say(
        language, "voice_welcome", clinic=clinic.name, disclosure=disclosure
    )
    return _xml(gather_twiml(text, language, turn_url(base, 1)))


def turn_url(base: str, number: int) -> str:
    return f"{base}/twilio/gather/turn?turn={number}"


@router.post("/turn")
async def turn(request: Request) -> Response:
    """One spoken (or keyed) answer through the offline receptionist, processed once."""
    params, phone, base = await _call(request)
    number = turn_number(request)
    if number is None:  # an action URL from before turns were numbered (none is issued now)
        return await _turn(request, params, phone, base, 1)
    return await once(
        request,
        f"gather:{params['CallSid']}:{number}",
        lambda: _turn(request, params, phone, base, number + 1),
    )


async def _turn(
    request: Request, params: dict[str, str], phone: str | None, base: str, next_number: int
) -> Response:
    conversations = get_conversations(request)
    services = conversations.services
    clinic = services.clinic()
    call_sid = params["CallSid"]
    state = await conversations.store.load("voice", call_sid)
    language = state.language or clinic.default_language
    if state.language is None and phone:
        patient = await services.patients.find_by_phone(phone)
        language = (patient.language if patient else None) or language
    action = turn_url(base, next_number)
    speech = params.get("SpeechResult", "").strip()
    digits = params.get("Digits", "").strip()
    if not speech and not digits:
        silences = silences_so_far(request) + 1
        if silences > MAX_SILENCES:
            return _xml(
                goodbye_twiml(conversations.replies.say(language, "voice_goodbye"), language)
            )
        text = conversations.replies.say(language, "voice_silence")
        keypad = state.stage in KEYPAD_STAGES
        return _xml(gather_twiml(text, language, action, silences=silences, many_digits=keypad))
    emergency = conversations.guard.texts
    if request.query_params.get("emergency") and emergency.is_yes(speech or digits, language):
        # The caller accepted the transfer offered after a red flag.
        text = emergency.voice_transferring(language)
        return _xml(transfer_twiml(text, language, clinic.staff_phone, clinic.phone))
    if not speech:
        yes = conversations.replies.say(language, "dtmf_yes")
        no = conversations.replies.say(language, "dtmf_no")
        speech = digits_to_text(digits, state.stage, yes, no)
    # Caller id is carrier-verified; a withheld number stays None and any number the caller
    # then says is only a claim (the identity step asks for a code or the birth date).
    reply = await conversations.handle(
        "voice", call_sid, speech, phone=phone, phone_verified=phone is not None, language=language
    )
    logger.info(
        "gather turn: stage=%s tools=%s %.0fms",
        reply.stage,
        ",".join(reply.tool_calls),
        reply.duration_ms,
    )
    if reply.emergency is not None:
        # Red flag: the number was said; flag the call and offer the staff while listening on.
        await _flag_call(services.engine, call_sid)
        return _xml(emergency_gather_twiml(conversations, reply.text, reply.language, base))
    if reply.handoff:
        text = reply.text + "\n" + conversations.replies.say(reply.language, "voice_transfer")
        return _xml(transfer_twiml(text, reply.language, clinic.staff_phone, clinic.phone))
    if reply.end:
        return _xml(goodbye_twiml(reply.text, reply.language))
    keypad = reply.stage in KEYPAD_STAGES  # a code or birth date by keypad, ended by #
    return _xml(gather_twiml(reply.text, reply.language, action, many_digits=keypad))


async def _flag_call(engine: Engine, call_sid: str) -> None:
    await asyncio.to_thread(
        set_call_fields, engine, call_sid, flagged=True, outcome=CallOutcome.emergency
    )


def emergency_gather_twiml(
    conversations: ConversationService, advice: str, language: str, base: str
) -> str:
    """Say the emergency advice, offer the staff, and listen: "yes" / 1 on ``/turn`` dials."""
    text = advice + "\n" + conversations.guard.texts.voice_offer_transfer(language)
    return gather_twiml(text, language, f"{base}/twilio/gather/turn?emergency=1")


async def red_flag_twiml(
    request: Request, call_sid: str, phone: str | None, speech: str, language: str, base: str
) -> str | None:
    """For no-AI call paths outside the receptionist (the confirmation keypad): a red flag in
    the caller's words gets the advice, the flag, the alert and the staff offer; else None."""
    conversations = get_conversations(request)
    flag = conversations.red_flag(speech)
    if flag is None:
        return None
    services = conversations.services
    where = ("call", call_sid)
    await conversations.guard.raise_alarm(flag, channel="voice", phone=phone, where=where)
    await _flag_call(services.engine, call_sid)
    advice = conversations.guard.texts.patient_message(services.clinic(), flag, language)
    return emergency_gather_twiml(conversations, advice, language, base)


def silences_so_far(request: Request) -> int:
    """How many silent turns in a row (``?silences=N`` on the action URL), bounded."""
    try:
        return max(0, min(10, int(request.query_params.get("silences") or 0)))
    except ValueError:
        return 0
