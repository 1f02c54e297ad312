"""The no-AI phone line: Twilio ``<Gather>`` (speech or keypad) through the offline receptionist.

``web/twilio_gather.py`` routes ``/twilio/gather/start`` and ``/turn`` here once the signature
checked out and the turn was found new; this module decides each answer's TwiML. It is also the
red-flag path of the confirmation keypad (:func:`red_flag_twiml`).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from voice_agent.conversation.engine import ConversationService
from voice_agent.errors import InvalidPatientData
from voice_agent.patients.service import normalize_phone
from voice_agent.services import Services
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

logger = logging.getLogger(__name__)


def caller_phone(services: Services, raw_from: str) -> str | None:
    """The caller's number from caller id; None for a withheld number (the receptionist asks
    for it when it needs it)."""
    try:
        return normalize_phone(raw_from, services.clinic().country)
    except InvalidPatientData:
        return None


def turn_url(base: str, number: int) -> str:
    return f"{base}/twilio/gather/turn?turn={number}"


async def welcome_twiml(conversations: ConversationService, phone: str | None, base: str) -> str:
    """Greet the caller in their language (known patient) or the clinic's, and listen."""
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
    return gather_twiml(text, language, turn_url(base, 1))


async def turn_twiml(
    conversations: ConversationService,
    params: dict[str, str],
    phone: str | None,
    base: str,
    next_number: int,
    *,
    silences: int,
    emergency_offered: bool,
) -> str:
    """One spoken (or keyed) answer through the offline receptionist.

    ``silences`` counts the silent turns before this one; ``emergency_offered`` says this turn
    answers the staff transfer offered after a red flag.
    """
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
        silences += 1
        if silences > MAX_SILENCES:
            return goodbye_twiml(conversations.replies.say(language, "voice_goodbye"), language)
        text = conversations.replies.say(language, "voice_silence")
        keypad = state.stage in KEYPAD_STAGES
        return gather_twiml(text, language, action, silences=silences, many_digits=keypad)
    emergency = conversations.guard.texts
    if emergency_offered and emergency.is_yes(speech or digits, language):
        # The caller accepted the transfer offered after a red flag.
        text = emergency.voice_transferring(language)
        return transfer_twiml(text, language, clinic.staff_phone, clinic.phone)
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
        await flag_call(services.engine, call_sid)
        return emergency_gather_twiml(conversations, reply.text, reply.language, base)
    if reply.handoff:
        text = reply.text + "\n" + conversations.replies.say(reply.language, "voice_transfer")
        return transfer_twiml(text, reply.language, clinic.staff_phone, clinic.phone)
    if reply.end:
        return goodbye_twiml(reply.text, reply.language)
    keypad = reply.stage in KEYPAD_STAGES  # a code or birth date by keypad, ended by #
    return gather_twiml(reply.text, reply.language, action, many_digits=keypad)


async def flag_call(engine: Engine, call_sid: str) -> None:
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
    conversations: ConversationService,
    call_sid: str,
    phone: str | None,
    speech: str,
    language: str,
    base: str,
) -> str | None:
    """For no-AI call paths outside the receptionist (the confirmation keypad): a red flag in
    the caller's words gets the advice, the flag, the alert and the staff offer; else None."""
    flag = conversations.red_flag(speech)
    if flag is None:
        return None
    services = conversations.services
    where = ("call", call_sid)
    await conversations.guard.raise_alarm(flag, channel="voice", phone=phone, where=where)
    await flag_call(services.engine, call_sid)
    advice = conversations.guard.texts.patient_message(services.clinic(), flag, language)
    return emergency_gather_twiml(conversations, advice, language, base)
